"""Distillation methods, one file each; register a new one with a line in METHODS."""

from __future__ import annotations

from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.methods.base import Distiller
from lfcc_pipeline.methods.cakd import CAKD
from lfcc_pipeline.methods.kd import LogitKD
from lfcc_pipeline.methods.lfcc import LFCC
from lfcc_pipeline.methods.none import NoDistillation
from lfcc_pipeline.methods.ofa import OFA
from lfcc_pipeline.methods.tas import TAS

METHODS: dict[str, type[Distiller]] = {m.name: m for m in (LFCC, OFA, CAKD, TAS, LogitKD, NoDistillation)}


def get_method(name: str) -> type[Distiller]:
    if name in METHODS:
        return METHODS[name]
    raise ConfigError(f"unknown --method {name!r}", f"choose one of {', '.join(METHODS)}")
