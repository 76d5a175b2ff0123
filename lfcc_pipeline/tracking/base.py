"""The tracker interface: scalars by global step, text and images; a no-op one; a guard that turns a
failing backend into one warning instead of a failed run."""

from __future__ import annotations

import logging
from pathlib import Path

from lfcc_pipeline.core.errors import first_line

_logger = logging.getLogger(__name__)
LOG_EVERY = 20  # training steps between logged values (the losses are read from the device then)


def warn_untracked(what: str, e: Exception) -> None:
    _logger.warning("warning: %s failed (%s: %s); the run continues without it", what, type(e).__name__,
                    first_line(e))  # fmt: skip


class Tracker:
    """Where a run's curves go. The base class records nothing (tracking off, or ranks other than 0)."""

    def scalars(self, values: dict[str, float], step: int) -> None:
        """One value per tag at global step `step`."""

    def text(self, tag: str, text: str, step: int = 0) -> None:
        """Markdown text (e.g. the bench report's table)."""

    def image(self, tag: str, path: Path, step: int = 0) -> None:
        """An image file (PNG), e.g. bench/report.png."""

    def artifact(self, path: Path, under: str = "") -> None:
        """A file or a directory kept with the run (MLflow artifacts; TensorBoard keeps none)."""

    def flush(self) -> None:
        """Everything recorded so far on disk (called before each checkpoint, so a kill loses nothing
        the checkpoint covers)."""

    def close(self) -> None:
        """Flush and release the files."""


class Guarded(Tracker):
    """Forwards to `inner`; the first exception it raises is one warning line and switches tracking off."""

    def __init__(self, inner: Tracker, what: str) -> None:
        self.inner: Tracker | None = inner
        self.what = what

    def _call(self, name: str, *args) -> None:
        if self.inner is None:
            return
        try:
            getattr(self.inner, name)(*args)
        except Exception as e:  # any backend failure (disk, a broken install): the run goes on untracked
            warn_untracked(self.what, e)
            self.inner = None

    def scalars(self, values: dict[str, float], step: int) -> None:
        self._call("scalars", values, step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self._call("text", tag, text, step)

    def image(self, tag: str, path: Path, step: int = 0) -> None:
        self._call("image", tag, path, step)

    def artifact(self, path: Path, under: str = "") -> None:
        self._call("artifact", path, under)

    def flush(self) -> None:
        self._call("flush")

    def close(self) -> None:
        self._call("close")


class Fanout(Tracker):
    """Every call goes to each tracker (TensorBoard and MLflow), each guarded on its own."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers

    def scalars(self, values: dict[str, float], step: int) -> None:
        for t in self.trackers:
            t.scalars(values, step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        for t in self.trackers:
            t.text(tag, text, step)

    def image(self, tag: str, path: Path, step: int = 0) -> None:
        for t in self.trackers:
            t.image(tag, path, step)

    def artifact(self, path: Path, under: str = "") -> None:
        for t in self.trackers:
            t.artifact(path, under)

    def flush(self) -> None:
        for t in self.trackers:
            t.flush()

    def close(self) -> None:
        for t in self.trackers:
            t.close()
