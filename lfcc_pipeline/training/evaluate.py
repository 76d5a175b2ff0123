"""Evaluation: logits of a PyTorch model over a split (the metrics on them are core/metrics.py)."""

from __future__ import annotations

import torch
from torch import nn

from lfcc_pipeline.core.progress import progress
from lfcc_pipeline.data.loader import Batches
from lfcc_pipeline.data.transforms import Normalization, to_float


@torch.no_grad()
def predict_logits(
    model: nn.Module, batches: Batches, img_size: int, norm: Normalization, device: torch.device, desc: str = "eval"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits float32 on CPU, labels) for every image of `batches`, model in eval mode."""
    was_training = model.training
    model.eval()
    outs, labels = [], []
    for x, y in progress(batches, desc=desc, total=len(batches)):
        x = norm(to_float(x.to(device, non_blocking=True), img_size))
        outs.append(model(x).float().cpu())
        labels.append(y)
    model.train(was_training)
    return torch.cat(outs), torch.cat(labels)
