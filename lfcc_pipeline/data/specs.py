"""Parse `--data` specs: fashion-mini, fashion-mnist[:DIR], cifar100[:DIR], imagefolder:DIR,
webdataset:DIR or webdataset:TRAIN;VAL[;TEST] (tar shard patterns, data/shard_patterns.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lfcc_pipeline.core.errors import DataError

KINDS = ("fashion-mini", "fashion-mnist", "cifar100", "imagefolder", "webdataset")
DEFAULT_DIRS = {
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
    "cifar100": Path(os.environ.get("LFCC_DATA_HOME", Path.home() / ".cache" / "lfcc-pipeline")) / "cifar100",
}
SPEC_HELP = "fashion-mini, fashion-mnist[:DIR], cifar100[:DIR], imagefolder:DIR or webdataset:DIR|TRAIN;VAL[;TEST]"
WEBDATASET_HELP = (
    "use webdataset:DIR (DIR/train/*.tar and DIR/val/*.tar) or quoted shard patterns "
    "'webdataset:/data/train-{000..146}.tar;/data/val-{000..006}.tar'"
)


@dataclass(frozen=True)
class DataSpec:
    kind: str
    path: Path | None  # None: the bundled data or the kind's default directory
    shards: tuple[str, ...] = ()  # webdataset: the train, val (and test) shard patterns

    def __str__(self) -> str:
        if self.shards:
            return f"{self.kind}:{';'.join(self.shards)}"
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_data_spec(spec: str) -> DataSpec:
    """Parse a data spec string; raise DataError naming the accepted forms."""
    spec = spec.strip()
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "webdataset":
        return _webdataset_spec(rest.strip())
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


def _webdataset_spec(rest: str) -> DataSpec:
    """webdataset:DIR (DIR/train, DIR/val and DIR/test shards) or webdataset:TRAIN;VAL[;TEST] patterns."""
    if not rest:
        raise DataError("webdataset needs a directory or shard patterns", WEBDATASET_HELP)
    parts = [p.strip() for p in rest.split(";")]
    if len(parts) == 1:
        root = Path(parts[0]).expanduser()
        if root.is_dir():
            return DataSpec("webdataset", root)
        raise DataError(
            f"webdataset:{rest} names one set of shards (or a directory that does not exist); "
            "training also needs validation shards", WEBDATASET_HELP,
        )  # fmt: skip
    if len(parts) > 3 or not all(parts):
        raise DataError(f"webdataset:{rest} needs 2 or 3 non-empty patterns (train;val[;test])", WEBDATASET_HELP)
    return DataSpec("webdataset", None, tuple(parts))
