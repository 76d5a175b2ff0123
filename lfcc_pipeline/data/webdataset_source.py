"""`webdataset:` data: tar shards indexed once (data/tar_shards.py) into splits of TarMembers.

The splits mirror `imagefolder:`: train and val shards, and test shards when given; without test
shards the val shards are the test split and validation is held out of train (stratified, by
`--seed`). Class names are the class indices ("0", "1", ...): `.cls` members carry no names.
"""

from __future__ import annotations

import logging

import torch

from lfcc_pipeline.core.errors import DataError
from lfcc_pipeline.data.shard_patterns import shard_files
from lfcc_pipeline.data.sources import Dataset, Split, stratified_holdout
from lfcc_pipeline.data.specs import WEBDATASET_HELP, DataSpec
from lfcc_pipeline.data.tar_shards import ShardIndex, index_shard, shards_fingerprint

_logger = logging.getLogger(__name__)


def split_patterns(spec: DataSpec) -> list[str]:
    """[train, val] or [train, val, test] shard patterns of a webdataset spec."""
    if spec.shards:
        return list(spec.shards)
    assert spec.path is not None
    root = spec.path
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise DataError(f"{root} has no train/ and val/ shard directories", WEBDATASET_HELP)
    return [str(root / name / "*.tar") for name in ("train", "val", "test") if (root / name).is_dir()]


def _split(indexes: list[ShardIndex]) -> Split:
    members = tuple(m for ix in indexes for m in ix.members)
    labels = torch.tensor([y for ix in indexes for y in ix.labels], dtype=torch.long)
    return Split(labels=labels, files=members)


def load_webdataset(spec: DataSpec, val_fraction: float, seed: int) -> Dataset:
    """Index every shard of the spec; unusable members (and unreadable shards) go to Dataset.unreadable."""
    patterns = split_patterns(spec)
    shards = [shard_files(p) for p in patterns]  # every pattern checked before any shard is read
    indexes = [[index_shard(s) for s in group] for group in shards]
    n_samples = sum(len(ix.members) for group in indexes for ix in group)
    _logger.info("webdataset: %d samples in %d shards (%s)", n_samples, sum(map(len, shards)),
                 ", ".join(f"{len(g)} {name}" for g, name in zip(shards, ("train", "val", "test"), strict=False)))  # fmt: skip
    splits = [_split(group) for group in indexes]
    bad = tuple(b for group in indexes for ix in group for b in ix.bad)
    for split, pattern in zip(splits, patterns, strict=True):
        if len(split) == 0:
            hint = f"first problem: {bad[0][0]}: {bad[0][1]}" if bad else WEBDATASET_HELP
            raise DataError(f"the shards of {pattern!r} hold no usable samples (key.jpg + key.cls)", hint)
    n_classes = int(max(s.labels.max() for s in splits)) + 1
    if n_classes < 2 or int(min(s.labels.min() for s in splits)) < 0:
        raise DataError(f"webdataset {spec} has class indices outside 0..N-1 with N >= 2", "check the .cls members")
    train_y = splits[0].labels.numpy()
    if len(splits) == 3:
        train, val, test = splits
    else:
        keep, hold = stratified_holdout(train_y, val_fraction, seed)
        train, val, test = splits[0].subset(keep), splits[0].subset(hold), splits[1]
    fingerprint = shards_fingerprint([ix for group in indexes for ix in group])
    classes = tuple(str(i) for i in range(n_classes))
    return Dataset(str(spec), classes, train, val, test, fingerprint, bad)
