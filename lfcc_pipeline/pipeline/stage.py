"""What a stage is: a plain function `run(cfg, ctx) -> StageResult` plus what it depends on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lfcc_pipeline.core.config import RunConfig


@dataclass
class StageContext:
    run_dir: Path
    device: torch.device
    fingerprint: str
    force: bool = False

    def path(self, rel: str) -> Path:
        return self.run_dir / rel


@dataclass
class StageResult:
    outputs: list[str]  # paths relative to the run directory
    metrics: dict[str, Any] = field(default_factory=dict)
    summary: str = ""  # one line for the run log


@dataclass(frozen=True)
class Stage:
    name: str
    deps: tuple[str, ...]
    run: Callable[[RunConfig, StageContext], StageResult]
    config_slice: Callable[[RunConfig], Any]
    needed: Callable[[RunConfig], bool] = lambda cfg: True
    help: str = ""
    distributed: bool = False  # under torchrun: run on every rank (training) or on rank 0 alone
