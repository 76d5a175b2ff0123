"""Reading and decoding one image file (a path or a tar shard member) and the file transform every
decode path applies: train = random resized crop + horizontal flip; eval = resize + center crop."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from lfcc_pipeline.data.tar_shards import TarMember

EVAL_CROP = 0.875  # eval: resize the shorter side to size / 0.875, then a center crop of size


def file_transform(size: int, train: bool):
    """The transform of decoded uint8 CHW images (on whatever device they are)."""
    from torchvision.transforms import v2

    if train:
        return v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()])
    return v2.Compose([v2.Resize(int(round(size / EVAL_CROP)), antialias=True), v2.CenterCrop(size)])


def read_encoded(ref: Path | TarMember, handles: dict | None = None) -> bytes:
    """The file's bytes as stored (a JPEG, PNG, ...)."""
    if isinstance(ref, TarMember):
        return ref.read(handles)
    return Path(ref).read_bytes()


def pil_decode(source: Path | TarMember | bytes, handles: dict | None = None) -> torch.Tensor:
    """uint8 RGB CHW through PIL (every format PIL reads); raises what PIL raises for a bad file."""
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    if isinstance(source, TarMember):
        source = source.read(handles)
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
        return pil_to_tensor(im.convert("RGB"))
