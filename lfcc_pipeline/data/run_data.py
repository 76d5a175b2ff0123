"""A run's data, as its RunConfig states it: the dataset (subset), what decides the split, batches."""

from __future__ import annotations

import dataclasses

from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.core.distributed import DistInfo, current
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.data.bad_images import SkippedImages, unreadable_error
from lfcc_pipeline.data.loader import Batches
from lfcc_pipeline.data.sources import Dataset, Split, load_dataset, stratified_holdout
from lfcc_pipeline.data.specs import parse_data_spec
from lfcc_pipeline.data.workers import resolve_workers


def skip_bad_images(cfg: RunConfig) -> bool:
    """--skip-bad-images: leave unreadable image files out (counted) instead of stopping on the first."""
    return cfg.data.skip_bad_images


def dataset(cfg: RunConfig) -> Dataset:
    """The run's dataset; files that cannot be images stop it here (one line) unless --skip-bad-images."""
    ds = load_dataset(parse_data_spec(cfg.data.spec), cfg.data.val_fraction, cfg.seed)
    if ds.unreadable and not skip_bad_images(cfg):
        raise unreadable_error(list(ds.unreadable))
    n = cfg.data.train_subset
    if n is not None and n < len(ds.train):
        if n < ds.num_classes:
            raise ConfigError(f"--train-subset {n} is smaller than the {ds.num_classes} classes", "use a larger subset")
        _, keep = stratified_holdout(ds.train.labels.numpy(), n / len(ds.train), seed=0)
        ds = dataclasses.replace(ds, train=ds.train.subset(keep))
    return ds


def data_split(cfg: RunConfig) -> list:
    """What decides which images train and validate (for fingerprints)."""
    return [cfg.data.val_fraction, cfg.seed, cfg.data.train_subset]


def skipped_images(cfg: RunConfig, ds: Dataset) -> SkippedImages | None:
    """A stage's record of skipped files (starting with those the folder scan left out), or None when
    unreadable images are errors."""
    return SkippedImages(ds.unreadable) if skip_bad_images(cfg) else None


def batches(
    cfg: RunConfig,
    split: Split,
    train: bool,
    img_size: int,
    batch_size: int | None = None,
    shard: bool = False,
    skipped: SkippedImages | None = None,
) -> Batches:
    """Batches of `split` at `img_size`; `shard`: this rank's share under torchrun (training always shards).
    Files that do not decode are recorded in `skipped` where given (--skip-bad-images) and errors otherwise;
    without a record, --skip-bad-images still skips them, uncounted."""
    bs = batch_size or cfg.train.batch_size
    info = current() if (train or shard) else DistInfo()
    if skipped is None and skip_bad_images(cfg):
        skipped = SkippedImages()
    return Batches(split, bs, train=train, img_size=img_size, seed=cfg.seed, workers=resolve_workers(cfg.data.workers),
                   rank=info.rank, world=info.world, skipped=skipped)  # fmt: skip
