"""Evaluation: logits over a split, top-k accuracy, agreement."""

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


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Percentage of samples whose label is among the k highest logits."""
    k = min(k, logits.shape[1])
    hits = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return 100.0 * hits.float().mean().item()


def agreement(logits_a: torch.Tensor, logits_b: torch.Tensor) -> float:
    """Percentage of samples on which two models' top-1 predictions agree."""
    return 100.0 * (logits_a.argmax(1) == logits_b.argmax(1)).float().mean().item()
