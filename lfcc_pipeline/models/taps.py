"""Feature taps through timm's uniform `forward_intermediates` API.

Our tap indices are positions in the model's `feature_info` list (0-based, negatives count from
the end): for CNNs these are stem/stage outputs, for ViTs and MLP-Mixers the transformer/mixer
blocks. timm returns every tap as an NCHW map (ViT tokens reshaped to a grid, prefix tokens
dropped), so CNN and ViT features are handled alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lfcc_pipeline.core.errors import ModelError


def feature_info(model: nn.Module) -> list[dict]:
    info = getattr(model, "feature_info", None)
    if not info or not hasattr(model, "forward_intermediates"):
        raise ModelError(
            f"{type(model).__name__} exposes no feature taps (timm feature_info/forward_intermediates)",
            "pick a model that timm supports with forward_intermediates, or use --method kd",
        )
    return list(info)


def tap_channels(model: nn.Module) -> list[int]:
    return [int(f["num_chs"]) for f in feature_info(model)]


def tap_reductions(model: nn.Module) -> list[int]:
    return [int(f["reduction"]) for f in feature_info(model)]


def normalize_indices(model: nn.Module, indices: Sequence[int]) -> list[int]:
    n = len(feature_info(model))
    out = []
    for i in indices:
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise ModelError(
                f"tap index {i} is out of range for {type(model).__name__} ({n} taps)", f"use indices in 0..{n - 1}"
            )
        out.append(j)
    return out


def forward_with_taps(
    model: nn.Module, x: torch.Tensor, indices: Sequence[int]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One forward pass returning (logits, NCHW feature maps at `indices`)."""
    final, inter = model.forward_intermediates(x, indices=list(indices), intermediates_only=False)
    return model.forward_head(final), list(inter)


def auto_indices(model: nn.Module, k: int) -> list[int]:
    """k tap indices spread over the model's depth, shallow to deep, ending at the last tap.

    Hierarchical models (CNNs, Swin): the last tap of each resolution, then the deepest k of
    those. Isotropic models (ViT, MLP-Mixer: every tap at one resolution): evenly spaced blocks.
    """
    reductions = tap_reductions(model)
    n = len(reductions)
    if len(set(reductions)) > 1:
        stage_ends = [i for i in range(n) if i == n - 1 or reductions[i + 1] != reductions[i]]
        chosen = stage_ends[-k:]
        if len(chosen) < k:  # fewer stages than requested: fill with the deepest remaining taps
            rest = [i for i in range(n) if i not in chosen]
            chosen = sorted(rest[len(rest) - (k - len(chosen)) :] + chosen) if k <= n else list(range(n))
        return chosen
    if k >= n:
        return list(range(n))
    return sorted({round((j + 1) * n / k) - 1 for j in range(k)})
