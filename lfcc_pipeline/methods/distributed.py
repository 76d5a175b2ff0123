"""Collectives the methods need under DistributedDataParallel (no-ops in a single process)."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate `x` from every rank (autograd flows back to each rank's part).

    Returns (gathered, offset of this rank's rows). All ranks must pass the same batch size.
    """
    rank, size = world()
    if size == 1:
        return x, 0
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=0), rank * x.shape[0]
