"""Distillation methods, one file each: a module here that defines a Distiller subclass with a `name`
is a method (its options dataclass, its flags and its place in `--method` come with it)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from typing import Any

from lfcc_pipeline.core.config import DistillConfig
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.methods.base import Distiller


def _discover() -> dict[str, type[Distiller]]:
    found: list[type[Distiller]] = []
    for mod in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{mod.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Distiller) and cls.__module__ == module.__name__ and "name" in cls.__dict__:
                found.append(cls)
    return {m.name: m for m in sorted(found, key=lambda m: (m.rank, m.name))}


METHODS: dict[str, type[Distiller]] = _discover()


def option_field(key: str) -> tuple[type[Distiller], dataclasses.Field] | None:
    """The method and its options field a flat name spells (`lfcc_scales` -> LFCC, its `scales`), or None."""
    for m in METHODS.values():
        if m.Options is not None and key.startswith(m.name + "_"):
            fields = {f.name: f for f in dataclasses.fields(m.Options)}
            field = fields.get(key[len(m.name) + 1 :])
            return (m, field) if field is not None else None
    return None


def distill_config(**flat: Any) -> DistillConfig:
    """A DistillConfig from names as the flags spell them: `method`, the shared fields (`ce_weight`...)
    and `<method>_<option>` (`lfcc_weight=3.0`, `cakd_taps=(-2, 2)`), for the Python API and tests."""
    shared = {f.name for f in dataclasses.fields(DistillConfig)} - {"methods"}
    per_method: dict[str, dict[str, Any]] = {}
    top = {}
    for key, value in flat.items():
        if key in shared:
            top[key] = value
            continue
        found = option_field(key)
        if found is None:
            raise TypeError(f"distill_config() got an unknown option {key!r}")
        per_method.setdefault(found[0].name, {})[found[1].name] = value
    cfg = DistillConfig(**top)
    return cfg.with_options(*(METHODS[name].Options(**values) for name, values in per_method.items()))


def get_method(name: str) -> type[Distiller]:
    if name in METHODS:
        return METHODS[name]
    raise ConfigError(f"unknown --method {name!r}", f"choose one of {', '.join(METHODS)}")
