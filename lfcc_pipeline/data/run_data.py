"""A run's data, as its RunConfig states it: the dataset (subset), what decides the split, batches."""

from __future__ import annotations

import dataclasses

from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.core.distributed import DistInfo, current
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.data.loader import Batches
from lfcc_pipeline.data.sources import Dataset, Split, load_dataset, stratified_holdout
from lfcc_pipeline.data.specs import parse_data_spec


def dataset(cfg: RunConfig) -> Dataset:
    ds = load_dataset(parse_data_spec(cfg.data.spec), cfg.data.val_fraction, cfg.seed)
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


def batches(
    cfg: RunConfig, split: Split, train: bool, img_size: int, batch_size: int | None = None, shard: bool = False
) -> Batches:
    """Batches of `split` at `img_size`; `shard`: this rank's share under torchrun (training always shards)."""
    bs = batch_size or cfg.train.batch_size
    info = current() if (train or shard) else DistInfo()
    return Batches(split, bs, train=train, img_size=img_size, seed=cfg.seed, workers=cfg.data.workers,
                   rank=info.rank, world=info.world)  # fmt: skip
