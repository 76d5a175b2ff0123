"""Accuracy metrics on logits: top-k accuracy and top-1 agreement between two models."""

from __future__ import annotations

import torch


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Percentage of samples whose label is among the k highest logits."""
    k = min(k, logits.shape[1])
    hits = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return 100.0 * hits.float().mean().item()


def agreement(logits_a: torch.Tensor, logits_b: torch.Tensor) -> float:
    """Percentage of samples on which two models' top-1 predictions agree."""
    return 100.0 * (logits_a.argmax(1) == logits_b.argmax(1)).float().mean().item()
