"""Parse `--data` specs: fashion-mini, fashion-mnist[:DIR], cifar100[:DIR], imagefolder:DIR."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lfcc_pipeline.core.errors import DataError

KINDS = ("fashion-mini", "fashion-mnist", "cifar100", "imagefolder")
DEFAULT_DIRS = {
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
    "cifar100": Path(os.environ.get("LFCC_DATA_HOME", Path.home() / ".cache" / "lfcc-pipeline")) / "cifar100",
}
SPEC_HELP = "fashion-mini, fashion-mnist[:DIR], cifar100[:DIR] or imagefolder:DIR"


@dataclass(frozen=True)
class DataSpec:
    kind: str
    path: Path | None  # None: the bundled data or the kind's default directory

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_data_spec(spec: str) -> DataSpec:
    """Parse a data spec string; raise DataError naming the accepted forms."""
    spec = spec.strip()
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise DataError(f"unknown data spec {spec!r}", f"use {SPEC_HELP}")
    path = Path(rest).expanduser() if rest.strip() else None
    if sep and path is None:
        raise DataError(f"data spec {spec!r} has an empty directory after ':'", f"use {SPEC_HELP}")
    if kind == "fashion-mini" and path is not None:
        raise DataError("fashion-mini is bundled and takes no directory", "use --data fashion-mini")
    if kind == "imagefolder" and path is None:
        raise DataError("imagefolder needs a directory", "use --data imagefolder:DIR (with DIR/train and DIR/val)")
    return DataSpec(kind, path)
