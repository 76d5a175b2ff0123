"""The Runner interface: a loaded model on a runtime that maps a float32 NCHW batch to logits."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class Runner(ABC):
    runtime: str  # torch | ort | trt | ov
    precision: str  # fp32 | fp16 | int8
    device: str  # cpu | cuda:0 | ...
    max_batch: int | None = None  # the largest batch one run takes (a TensorRT profile's max); None: any

    @abstractmethod
    def prepare(self, batch: np.ndarray) -> Any:
        """Move a float32 NCHW batch to the runtime's native input (device tensor, numpy array)."""

    @abstractmethod
    def run(self, native_input: Any) -> Any:
        """One inference on a prepared input; returns the runtime's native output."""

    def synchronize(self) -> None:  # noqa: B027 - optional hook, a no-op on the CPU
        """Wait for queued device work (timing boundaries)."""

    @abstractmethod
    def to_numpy(self, native_output: Any) -> np.ndarray:
        """Native output -> float32 logits (N, classes) on the host."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a batch of any size (split into runs of at most `max_batch`)."""
        step = self.max_batch or len(batch)
        if len(batch) <= step:
            return self.to_numpy(self.run(self.prepare(batch)))
        return np.concatenate([self.to_numpy(self.run(self.prepare(batch[i : i + step])))
                               for i in range(0, len(batch), step)])  # fmt: skip

    def for_throughput(self) -> Runner:
        """The runner the --bench-batch throughput is measured with (OpenVINO: the THROUGHPUT hint's streams)."""
        return self

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "precision": self.precision, "device": self.device}
