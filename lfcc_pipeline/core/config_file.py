"""Config files: `--config FILE` (YAML) read onto a RunConfig, and the `config.yaml` every run writes.

The file mirrors RunConfig's sections (`models`, `data`, `train` with `optim`, `distill` with
`methods: {lfcc: {...}, ...}`, `export`, `calib`, `bench`, `build`, and `out`, `device`, `seed`).
Keys it leaves out keep their defaults. An unknown key, a wrong type or a bad value is one
ConfigError line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from types import UnionType
from typing import Any

import yaml

from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.core.options import check_value, flag_of, opt_of, prefix_of

HEADER = (
    "# The resolved configuration of this run (lfcc-pipeline {version}).\n"
    "# Reproduce it: lfcc-pipeline run --config {path}   (flags given as well override the file)\n"
)


def dump_config(cfg: Any, version: str, path: Path) -> str:
    """The YAML text of a RunConfig (Paths as strings, tuples as lists), with a header saying how to reuse it."""
    from lfcc_pipeline.core.config import as_dict

    body = yaml.safe_dump(as_dict(cfg), sort_keys=False, default_flow_style=None, width=110)
    return HEADER.format(version=version, path=path) + body


def load_config_file(path: Path, base: Any, method_options: dict[str, type]) -> tuple[Any, set[tuple[str, ...]]]:
    """`base` with the values of the YAML file at `path`, and the paths of the fields the file set.

    `method_options` maps a method's name to its options dataclass (the `distill.methods` section)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path} does not exist", "pass a YAML file, e.g. runs/<name>/config.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(
            f"{path}: not valid YAML{at}", "fix the file (or write it anew from a run's config.yaml)"
        ) from None
    if data is None:
        return base, set()
    reader = _Reader(path, method_options)
    return reader.section(base, data, ()), reader.set_paths


class _Reader:
    def __init__(self, path: Path, method_options: dict[str, type]) -> None:
        self.path = path
        self.method_options = method_options
        self.set_paths: set[tuple[str, ...]] = set()

    def fail(self, key: tuple[str, ...], what: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"{self.path}: {'.'.join(key) or 'the file'}: {what}", hint)

    def section(self, obj: Any, data: Any, key: tuple[str, ...]) -> Any:
        if not isinstance(data, dict):
            raise self.fail(key, f"expected a mapping of keys, got {_shown(data)}")
        fields = {f.name: f for f in dataclasses.fields(obj)}
        hints = typing.get_type_hints(type(obj))
        changes = {}
        for name, value in data.items():
            here = (*key, str(name))
            if name not in fields:
                raise self.fail(here, "unknown key", f"known keys here: {', '.join(fields)}")
            f, current = fields[name], getattr(obj, name)
            if f.metadata.get("mapping"):
                changes[name] = self.methods(current, value, here)
            elif dataclasses.is_dataclass(current):
                changes[name] = self.section(current, value, here)
            else:
                changes[name] = self.leaf(f, hints[name], value, here)
                self.set_paths.add(here)
        return dataclasses.replace(obj, **changes)

    def methods(self, current: tuple, data: Any, key: tuple[str, ...]) -> tuple:
        if not isinstance(data, dict):
            raise self.fail(key, f"expected a mapping of method names, got {_shown(data)}")
        items = dict(current)
        for name, value in data.items():
            if name not in self.method_options:
                raise self.fail((*key, str(name)), "unknown method", f"known: {', '.join(self.method_options)}")
            opts = items.get(name) or self.method_options[name]()
            items[name] = self.section(opts, value, (*key, name))
        return tuple(items.items())

    def leaf(self, f: dataclasses.Field, hint: Any, value: Any, key: tuple[str, ...]) -> Any:
        try:
            out = _coerce(hint, value, opt_of(f))
        except (TypeError, ValueError, ConfigError) as e:
            raise self.fail(key, f"expected {_describe(hint)}, got {_shown(value)}", _hint_of(e)) from None
        try:
            check_value(f, flag_of(f, prefix_of(key)), out)
        except ConfigError as e:
            raise self.fail(key, e.message, e.hint) from None
        return out


def _hint_of(e: Exception) -> str | None:
    return e.hint if isinstance(e, ConfigError) else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def _coerce(hint: Any, value: Any, opt: Any) -> Any:
    inner, optional = _optional(hint)
    if value is None:
        if optional:
            return None
        raise TypeError("None")
    if opt is not None and opt.parse is not None and isinstance(value, str):
        return opt.parse(value)  # the command line's spelling: "1,2,4", "3:1,7:2"
    if typing.get_origin(inner) is tuple:
        return _tuple(inner, value)
    if inner is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(value)
    if inner is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError(value)
    if inner is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError(value)
    if inner is str:
        if isinstance(value, str):
            return value
        raise TypeError(value)
    if inner is Path:
        if isinstance(value, str) and value:
            return Path(value)
        raise TypeError(value)
    raise TypeError(f"unsupported type {inner}")


def _tuple(hint: Any, value: Any) -> tuple:
    args = typing.get_args(hint)
    if isinstance(value, str) and args and args[0] is str:
        value = [value]  # one target given as a plain string
    if not isinstance(value, (list, tuple)):
        raise TypeError(value)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_coerce(args[0], v, None) for v in value)
    if len(args) != len(value):
        raise ValueError(value)
    return tuple(_coerce(a, v, None) for a, v in zip(args, value, strict=True))


def _describe(hint: Any) -> str:
    inner, optional = _optional(hint)
    if typing.get_origin(inner) is tuple:
        args = typing.get_args(inner)
        text = f"a list of {_describe(args[0])}s" if args and args[-1] is Ellipsis else f"a list of {len(args)} values"
    else:
        text = {int: "an integer", float: "a number", str: "a string", bool: "true or false", Path: "a path"}.get(
            inner, str(inner)
        )
    return f"{text} (or null)" if optional else text
