"""Device-side batch preparation: uint8 -> float, resize, augment, normalise per model."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Normalization:
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = _constants(self.mean, self.std, x.device, x.dtype)
        return (x - mean) / std


@functools.lru_cache(maxsize=32)
def _constants(mean: tuple, std: tuple, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """mean/std as (1, C, 1, 1) tensors on `device`, made once: a host-to-device copy per batch
    would make the training loop wait for the GPU."""
    with torch.inference_mode(False):  # normal tensors, even when first asked for during evaluation
        return tuple(torch.tensor(v, dtype=dtype).view(1, -1, 1, 1).to(device) for v in (mean, std))


def to_float(x: torch.Tensor, img_size: int) -> torch.Tensor:
    """uint8 (N, 1|3, H, W) -> float32 in [0, 1], 3 channels, img_size x img_size."""
    x = x.float().div_(255.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (img_size, img_size):
        x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous()


def augment(
    x: torch.Tensor, generator: torch.Generator, pad_fraction: float = 0.125, offset: int = 0, total: int | None = None
) -> torch.Tensor:
    """Random translation by up to pad_fraction of the size (reflect padding) and horizontal flip.

    One affine resampling for the whole batch; integer pixel shifts keep it an exact crop. Under
    DDP, x is rows offset..offset+n of a global batch of `total`: the draws are made for the global
    batch and sliced, so every rank count yields the same augmentation per image.
    """
    n, _, h, w = x.shape
    total = total or n
    pad = max(1, int(round(pad_fraction * min(h, w))))
    shift = torch.randint(-pad, pad + 1, (total, 2), generator=generator, device=x.device)[offset : offset + n]
    flip = torch.randint(0, 2, (total,), generator=generator, device=x.device)[offset : offset + n]
    shift, flip = shift.to(x.dtype), flip.to(x.dtype) * 2 - 1
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = flip
    theta[:, 1, 1] = 1
    theta[:, 0, 2] = shift[:, 0] * 2 / w
    theta[:, 1, 2] = shift[:, 1] * 2 / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="reflection", align_corners=False)


def batch_generator(device: torch.device, seed: int, epoch: int, step: int) -> torch.Generator:
    """A generator seeded by (seed, epoch, step): resuming mid-epoch reproduces the same augmentation."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + step)
    return g
