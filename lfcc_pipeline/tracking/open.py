"""A stage's tracker: TensorBoard (unless --no-tensorboard) and MLflow (with --mlflow), side by side."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lfcc_pipeline.core import layout
from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.tracking.base import Fanout, Tracker
from lfcc_pipeline.tracking.mlflow import mlflow_uri, open_mlflow
from lfcc_pipeline.tracking.tensorboard import open_tensorboard, tensorboard_enabled


def open_stage_tracker(cfg: RunConfig, run_dir: Path, stage: str, purge_step: int = 0) -> Tracker:
    """What `stage` (teacher, distill, bench) records into; `purge_step`: the first step it writes (TensorBoard
    hides what earlier processes wrote from there on)."""
    trackers = []
    if tensorboard_enabled(cfg):
        trackers.append(open_tensorboard(Path(run_dir) / layout.tensorboard(stage), purge_step))
    if mlflow_uri(cfg, run_dir) is not None:
        trackers.append(open_mlflow(cfg, run_dir, stage))
    return Fanout(trackers)


def stage_tracker_opener(cfg: RunConfig, run_dir: Path, stage: str) -> Callable[[int], Tracker] | None:
    """What the training loop calls with the purge step once it knows where it resumes; None when all are off."""
    if not tensorboard_enabled(cfg) and mlflow_uri(cfg, run_dir) is None:
        return None
    return lambda purge_step: open_stage_tracker(cfg, run_dir, stage, purge_step)


def log_report(cfg: RunConfig, run_dir: Path) -> None:
    """The bench report: its table as text and report.png as an image (TensorBoard, replacing an earlier
    bench run's), and report.json/md/png as MLflow artifacts."""
    run_dir = Path(run_dir)
    tracker = open_stage_tracker(cfg, run_dir, "bench", purge_step=0)
    md, png = run_dir / layout.REPORT_MD, run_dir / layout.REPORT_PNG
    if md.is_file():
        tracker.text("bench/report", md.read_text())
    if png.is_file():
        tracker.image("bench/report", png)
    for rel in (layout.REPORT_JSON, layout.REPORT_MD, layout.REPORT_PNG):
        if (run_dir / rel).is_file():
            tracker.artifact(run_dir / rel, "bench")
    tracker.close()
