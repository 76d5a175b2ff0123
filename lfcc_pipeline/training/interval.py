"""What the training loop records per logging interval: mean losses, learning rate, images/s, the
fraction of the time spent waiting for data, and GPU memory (on CUDA)."""

from __future__ import annotations

import time

import torch


class Interval:
    """Sums since the last logging step; losses stay on the device until `values()` reads them (one sync)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.loss: torch.Tensor | None = None
        self.parts: dict[str, torch.Tensor] = {}
        self.steps = self.images = 0
        self.wait = 0.0
        self.started = time.perf_counter()

    def add(self, loss: torch.Tensor, losses: dict[str, torch.Tensor], images: int) -> None:
        self.loss = loss if self.loss is None else self.loss + loss
        for k, v in losses.items():
            self.parts[k] = self.parts[k] + v if k in self.parts else v
        self.steps += 1
        self.images += images

    def waited(self, seconds: float) -> None:
        """Host time spent in the data iterator (waiting for the next batch)."""
        self.wait += seconds

    def values(self, lr: float, world: int = 1) -> dict[str, float]:
        """The interval's record, by TensorBoard tag; images/s counts every rank's share (rank 0's times world)."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        out: dict[str, float] = {"train/lr": lr, "perf/images_per_s": self.images * world / elapsed,
                                 "perf/data_wait_fraction": min(1.0, self.wait / elapsed)}  # fmt: skip
        if self.steps and self.loss is not None:
            means = (torch.stack([self.loss, *self.parts.values()]) / self.steps).tolist()
            out["train/loss"] = means[0]
            out.update({f"train/{k}": v for k, v in zip(self.parts, means[1:], strict=True)})
        if self.device.type == "cuda":
            out["gpu/memory_allocated_mib"] = torch.cuda.memory_allocated(self.device) / 2**20
            out["gpu/max_memory_allocated_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        return out
