"""What a stage is: a plain function `run(cfg, ctx) -> StageResult`, what it depends on, and its
pre-flight `check(cfg)`. The stages (stages/*.py) fill these in; the runner (pipeline/) drives them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lfcc_pipeline.core.config import RunConfig

if TYPE_CHECKING:
    import torch


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


def no_check(cfg: RunConfig) -> None:
    """A stage with nothing to check before the run."""


@dataclass(frozen=True)
class Stage:
    name: str
    deps: tuple[str, ...]
    run: Callable[[RunConfig, StageContext], StageResult]
    config_slice: Callable[[RunConfig], Any]
    needed: Callable[[RunConfig], bool] = lambda cfg: True
    distributed: bool = False  # under torchrun: run on every rank (training) or on rank 0 alone
    # pre-flight: raise the LfccError this stage would fail with, before any stage runs
    check: Callable[[RunConfig], None] = no_check
    check_unless_reached: bool = True  # False: checked only when the run reaches it (--stop-after earlier skips it)
