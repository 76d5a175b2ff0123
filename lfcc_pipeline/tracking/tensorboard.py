"""TensorBoard event files (torch.utils.tensorboard over the `tensorboard` package).

`purge_step` makes a resumed run continue the same curves: TensorBoard hides the events of earlier
files at steps >= purge_step (those written after the checkpoint the run resumed from), and the
resumed run writes them again, so every step has one value."""

from __future__ import annotations

from pathlib import Path

from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.tracking.base import Guarded, Tracker, warn_untracked


def tensorboard_enabled(cfg: RunConfig) -> bool:
    """--tensorboard/--no-tensorboard (default on)."""
    return cfg.tracking.tensorboard


def log_every(cfg: RunConfig) -> int:
    return cfg.tracking.log_every


class TensorBoardTracker(Tracker):
    def __init__(self, logdir: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(logdir), purge_step=purge_step, flush_secs=30)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, global_step=step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self.writer.add_text(tag, text, global_step=step)

    def image(self, tag: str, path: Path, step: int = 0) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        self.writer.add_image(tag, pixels, global_step=step, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_tensorboard(logdir: Path, purge_step: int | None = None) -> Tracker:
    """A guarded TensorBoard tracker writing under `logdir`; a plain Tracker (after one warning line)
    when the writer cannot be opened."""
    what = f"TensorBoard logging to {logdir}"
    try:
        return Guarded(TensorBoardTracker(logdir, purge_step), what)
    except Exception as e:  # not installed, an unwritable directory: the run goes on untracked
        warn_untracked(what, e)
        return Tracker()
