"""LFCC's multi-scale low-pass filters: linear maps of a (B, C, H, W) feature map to (B, C * cells).

Two designs, chosen with --lfcc-filter:
- `pool` (the default): average pools to s x s grids for every s in `scales`; 1 x 1 is the DC
  component, and pooling to fixed grids also removes the spatial-size mismatch of the two models.
- `gauss`: Gaussian blurs of several kernel sizes at stride 1 (each a low-pass with a different
  cut-off; size 1 is the unfiltered map), every blurred map then average-pooled to one common
  `grid` x `grid`.
Both are linear in the map, so a whole pyramid is one matmul with a cached (H*W, cells) matrix: one
op forward and backward, whatever the number of scales.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

FILTERS = ("pool", "gauss")


def gaussian_kernel(size: int) -> torch.Tensor:
    """(size, size) normalised Gaussian, sigma = size / 4 (a kernel of size 1 is the identity)."""
    if size == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (r / (size / 4)) ** 2)
    g = g / g.sum()
    return g[:, None] * g[None, :]


def _blur(basis: torch.Tensor, size: int) -> torch.Tensor:
    """Blur (N, 1, H, W) at stride 1, renormalised at the borders (only in-map pixels are averaged)."""
    k = gaussian_kernel(size)[None, None]
    pad = size // 2
    summed = F.conv2d(basis, k, padding=pad)
    weight = F.conv2d(torch.ones_like(basis[:1]), k, padding=pad)
    return summed / weight


@functools.lru_cache(maxsize=64)
def filter_matrix(h: int, w: int, design: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(H*W, cells): column j is the weights of output cell j over the map's pixels.

    `design` is ("pool", scales) or ("gauss", sizes, grid)."""
    basis = torch.eye(h * w, dtype=torch.float64).view(h * w, 1, h, w)
    if design[0] == "pool":
        cols = [F.adaptive_avg_pool2d(basis, s).flatten(1) for s in design[1]]
    else:
        _, sizes, grid = design
        cols = [F.adaptive_avg_pool2d(_blur(basis, k), grid).flatten(1) for k in sizes]
    return torch.cat(cols, dim=1).to(device=device, dtype=dtype)


def cells(design: tuple) -> int:
    """Output cells per channel of `design`."""
    if design[0] == "pool":
        return sum(s * s for s in design[1])
    return len(design[1]) * design[2] ** 2


def low_pass(x: torch.Tensor, design: tuple) -> torch.Tensor:
    """(B, C, H, W) -> (B, C * cells(design))."""
    b, c, h, w = x.shape
    return (x.reshape(b, c, h * w) @ filter_matrix(h, w, design, x.device, x.dtype)).flatten(1)
