"""Training batches over tar shards: each rank reads only its own shards, shard by shard.

Epoch e: the shards are permuted by (seed, e) and rank r takes every world-th of them; its samples
(in file order, so reads stay sequential) are shuffled within windows of SHUFFLE_WINDOW (a
shuffle buffer, as webdataset's). Every rank yields the same number of local batches,
len(split) // global batch, so DDP's collectives line up: a rank whose shards hold fewer samples
goes round its shards again (in a new order), one with more leaves the rest for another epoch.
Deterministic by (seed, epoch, rank, world): a resumed run skips to the same batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from lfcc_pipeline.core.errors import DataError

SHUFFLE_WINDOW = 4096


class ShardBatches:
    """Index lists for one epoch (the IndexBatches interface), `shard_ids[i]` the shard of sample i."""

    def __init__(self, shard_ids: np.ndarray, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1,
                 window: int = SHUFFLE_WINDOW) -> None:  # fmt: skip
        if batch_size % world:
            raise DataError(f"--batch-size {batch_size} does not split evenly across {world} processes",
                            f"use a multiple of {world}")  # fmt: skip
        self.shards = [np.flatnonzero(shard_ids == s) for s in np.unique(shard_ids)]
        if len(self.shards) < world:
            raise DataError(
                f"the training split lies in {len(self.shards)} shard(s), fewer than the {world} processes",
                "write the training data into at least as many shards as processes (ImageNet: hundreds)",
            )
        self.n, self.batch_size, self.seed, self.rank, self.world = len(shard_ids), batch_size, seed, rank, world
        self.window = window
        self.epoch = 0
        self.shuffle, self.drop_last = True, True

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def local_batch(self) -> int:
        return self.batch_size // self.world

    def __len__(self) -> int:
        return self.n // self.batch_size

    def my_shards(self, epoch: int | None = None, lap: int = 0) -> list[int]:
        """This rank's shards (positions in self.shards) in reading order for `epoch`'s `lap`-th round."""
        epoch = self.epoch if epoch is None else epoch
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.shards))[self.rank :: self.world]
        if lap:
            order = np.random.default_rng([self.seed, epoch, self.rank, lap]).permutation(order)
        return [int(s) for s in order]

    def _stream(self) -> Iterator[np.ndarray]:
        lap = 0
        while True:
            samples = np.concatenate([self.shards[s] for s in self.my_shards(lap=lap)])
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, lap, 1])
            for i in range(0, len(samples), self.window):
                yield rng.permutation(samples[i : i + self.window])
            lap += 1

    def __iter__(self) -> Iterator[np.ndarray]:
        need, local = len(self) * self.local_batch, self.local_batch
        chunks, have = [], 0
        for chunk in self._stream():
            chunks.append(chunk)
            have += len(chunk)
            if have >= need:
                break
        idx = np.concatenate(chunks)[:need] if need else np.empty(0, dtype=np.int64)
        for i in range(0, need, local):
            yield idx[i : i + local]
