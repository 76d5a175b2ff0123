"""PyTorch eager runner (the FP32 reference every other runtime is compared with)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lfcc_pipeline.runtimes.base import Runner


class TorchRunner(Runner):
    runtime = "torch"
    precision = "fp32"

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model = model.eval().to(device)
        self.torch_device = device
        self.device = str(device)

    def prepare(self, batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.torch_device)

    @torch.inference_mode()
    def run(self, native_input: torch.Tensor) -> torch.Tensor:
        return self.model(native_input)

    def synchronize(self) -> None:
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize(self.torch_device)

    def to_numpy(self, native_output: torch.Tensor) -> np.ndarray:
        return native_output.float().cpu().numpy()
