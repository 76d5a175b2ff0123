"""Batches of uint8 images and labels, deterministic by (seed, epoch), shardable across ranks.

In-memory splits are sliced directly (no worker processes needed); file splits decode images
in DataLoader workers. Either way a batch is `(uint8 images N,C,H,W, int64 labels)` and the
float conversion, resizing, augmentation and normalisation happen on the device
(data/transforms.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from lfcc_pipeline.core.errors import DataError, first_line
from lfcc_pipeline.data.bad_images import SkippedImages, unreadable_error
from lfcc_pipeline.data.decode import file_transform, pil_decode, read_encoded
from lfcc_pipeline.data.device_decode import DeviceDecoder, Encoded
from lfcc_pipeline.data.shard_order import ShardBatches
from lfcc_pipeline.data.sources import Split


class IndexBatches:
    """Index lists for one epoch, deterministic by (seed, epoch), shared out across ranks.

    `batch_size` is the global batch. Training (shuffle, drop_last): the epoch's permutation is
    cut into global batches and rank r takes the r-th equal slice of each, so step k sees the
    same images whatever the world size (a single process and N processes train alike, and a
    checkpoint resumes under another world size). Evaluation: rank r takes every world-th
    image, with no padding, so reduced counts are exact.
    """

    def __init__(
        self, n: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int = 0, rank: int = 0, world: int = 1
    ) -> None:
        if drop_last and batch_size % world:
            raise DataError(f"--batch-size {batch_size} does not split evenly across {world} processes",
                            f"use a multiple of {world}")  # fmt: skip
        self.n, self.batch_size, self.shuffle, self.drop_last = n, batch_size, shuffle, drop_last
        self.seed, self.rank, self.world = seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def local_batch(self) -> int:
        return self.batch_size // self.world if self.drop_last else self.batch_size

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.shuffle:
            idx = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            idx = np.arange(self.n)
        if self.drop_last:
            local = self.local_batch
            for i in range(0, self.n - self.batch_size + 1, self.batch_size):
                yield idx[i + self.rank * local : i + (self.rank + 1) * local]
            return
        idx = idx[self.rank :: self.world]
        for i in range(0, len(idx), self.batch_size):
            yield idx[i : i + self.batch_size]

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return math.ceil(len(range(self.rank, self.n, self.world)) / self.batch_size)


class _FileImages(torch.utils.data.Dataset):
    """Image files (paths or tar shard members) as uint8 CHW tensors at `size`, decoded with PIL and
    transformed (data/decode.py); with `encoded`, only their bytes, for decoding on the device."""

    def __init__(self, files: tuple, labels: torch.Tensor, size: int, train: bool, encoded: bool = False) -> None:
        self.files, self.labels, self.encoded = files, labels, encoded
        self.tf = file_transform(size, train)
        self._handles: dict = {}  # the tar shard open in this process (reads go shard by shard)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple:
        """(image or Encoded, label, None), or (None, label, (file, why)) for a file that does not read or
        decode: an exception raised here would reach the main process wrapped in a DataLoader traceback."""
        ref = self.files[i]
        try:
            if self.encoded:
                data = torch.frombuffer(bytearray(read_encoded(ref, self._handles)), dtype=torch.uint8)
                return Encoded(data, str(ref)), self.labels[i], None
            x = pil_decode(ref, self._handles)
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
            return None, self.labels[i], (Path(str(ref)), f"cannot be decoded ({type(e).__name__}: {first_line(e)})")
        return self.tf(x), self.labels[i], None


def collate_images(items: list) -> tuple[torch.Tensor | list, torch.Tensor, list[tuple[Path, str]]]:
    """Stack the decoded images of a batch (Encoded items stay a list); the files that did not decode
    come back as a list."""
    good = [(x, y) for x, y, bad in items if bad is None]
    bad = [bad for _, _, bad in items if bad is not None]
    labels = torch.stack([y for _, y in good]) if good else torch.empty((0,), dtype=torch.long)
    if good and isinstance(good[0][0], Encoded):
        return [x for x, _ in good], labels, bad
    if not good:
        return torch.empty((0, 3, 1, 1), dtype=torch.uint8), labels, bad
    return torch.stack([x for x, _ in good]), labels, bad


class Batches:
    """Iterable of (uint8 images, labels) batches over a Split; `skip` resumes mid-epoch.

    A file that does not decode raises DataError naming it, or, given a SkippedImages record
    (--skip-bad-images), is left out of its batch and recorded. A training batch keeps its place even
    when none of its files decoded (it comes out empty; the loop skips it), so resuming stays exact."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        train: bool,
        img_size: int,
        seed: int = 0,
        workers: int = 0,
        rank: int = 0,
        world: int = 1,
        skipped: SkippedImages | None = None,
    ) -> None:
        self.split, self.train, self.img_size = split, train, img_size
        self.skipped = skipped  # None: an image that does not decode stops the run with one line
        if train and split.in_shards:  # each rank reads its own shards (data/shard_order.py)
            shard_of = {s: i for i, s in enumerate(dict.fromkeys(m.shard for m in split.files))}
            ids = np.fromiter((shard_of[m.shard] for m in split.files), dtype=np.int64, count=len(split))
            self.index = ShardBatches(ids, batch_size, seed=seed, rank=rank, world=world)
        else:
            self.index = IndexBatches(
                len(split), batch_size, shuffle=train, drop_last=train, seed=seed, rank=rank, world=world
            )
        if train and len(self.index) == 0:
            raise DataError(
                f"the training split has {len(split)} images, fewer than one batch of {batch_size}",
                "lower --batch-size or use more data",
            )
        self.files = None if split.files is None else _FileImages(split.files, split.labels, img_size, train)
        self.workers = workers
        self.decoder: DeviceDecoder | None = None  # set by decode_on: workers read bytes, the device decodes

    def cache_on(self, device: torch.device, max_bytes: int = 4 << 30) -> None:
        """Keep an in-memory split on `device` (e.g. the GPU) so batches need no host copies."""
        images = self.split.images
        if images is not None and images.device != device and images.numel() <= max_bytes:
            self.split = Split(labels=self.split.labels.to(device), images=images.to(device))

    def decode_on(self, device: torch.device) -> None:
        """Decode image files on `device` (JPEGs with nvJPEG on CUDA); the workers then only read bytes."""
        if self.files is not None:
            self.files = _FileImages(self.split.files, self.split.labels, self.img_size, self.train, encoded=True)
            self.decoder = DeviceDecoder(device, self.files.tf)

    @property
    def device_augment(self) -> bool:
        """In-memory batches are augmented on the device; file batches were augmented by workers."""
        return self.train and self.files is None

    def set_epoch(self, epoch: int) -> None:
        self.index.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def iterate(self, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches = list(self.index)[skip:]
        if self.files is None:
            images = self.split.images
            if images is None:
                raise DataError("split has neither images nor files", "this is a bug; please report it")
            for b in batches:
                t = torch.from_numpy(b).to(images.device)
                yield images[t], self.split.labels[t]
            return
        loader = torch.utils.data.DataLoader(
            self.files,
            batch_sampler=[b.tolist() for b in batches],
            num_workers=self.workers,
            pin_memory=torch.cuda.is_available() and self.decoder is None,
            persistent_workers=False,
            collate_fn=collate_images,
        )
        for x, y, bad in loader:
            if self.decoder is not None:
                x, y, more = self.decoder(x, y)
                bad = bad + [(Path(ref), why) for ref, why in more]
            if bad:
                if self.skipped is None:
                    raise unreadable_error(bad)
                for path, why in bad:
                    self.skipped.add(path, why)
            if len(y) or self.train:
                yield x, y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iterate()
