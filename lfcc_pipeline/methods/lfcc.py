"""`lfcc`: low-frequency components-based contrastive KD (arXiv 2405.18524), as DESIGN.md section 6 states it.

Per stage pair (teacher tap, student tap):
  1. a multi-scale low-pass filter: average pools of the NCHW map to s x s grids for s in
     `lfcc_scales` (1 x 1 is the DC component; pooling to fixed grids also removes the spatial-size
     mismatch between architectures), flattened and concatenated;
  2. a projector per side (Linear-BN-ReLU-Linear) into a compact `lfcc_dim`-d space, L2-normalised;
  3. sample-level InfoNCE: the positive of a student embedding is the teacher embedding of the
     same sample, the negatives are the other samples' teacher embeddings (gathered from every
     rank under DDP); symmetric; temperature `lfcc_temperature`.
Total: ce_weight * CE + kd_weight * KD(T) + lfcc_weight * sum over stages.

The paper's exact hyper-parameters are not public; our defaults (3 stages, scales 1,2,4, d=128,
tau=0.1) are documented in the README with the proxy benchmark they were checked on. The teacher
backbone is frozen and runs without autograd; its projectors train. Projectors are training-time
only: export takes `distiller.student`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lfcc_pipeline.core.config import DistillConfig
from lfcc_pipeline.core.distributed import gather_with_grad
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.core.options import each, int_list, non_negative, option, positive, tap_pairs
from lfcc_pipeline.methods.base import Distiller, kd_loss, run_teacher
from lfcc_pipeline.models.taps import auto_indices, forward_with_taps, normalize_indices, tap_channels


@dataclass(frozen=True)
class LFCCOptions:
    """LFCC's options (flags --lfcc-*); weight 2.0 chosen on validation top-1 (benchmarks/compare_methods.py)."""

    METHOD: ClassVar[str] = "lfcc"
    weight: float = option(2.0, help="LFCC contrastive loss weight.", check=non_negative)
    stages: tuple[tuple[int, int], ...] | None = option(  # (teacher idx, student idx); None: auto
        None,
        metavar="T:S,...",
        parse=tap_pairs,
        help="LFCC tap pairs (teacher:student feature_info indices). [default: auto]",
    )
    num_stages: int = option(3, help="Auto-chosen LFCC stage pairs.", check=positive)
    scales: tuple[int, ...] = option(
        (1, 2, 4),
        parse=int_list,
        help="Low-pass grid sizes (average pools).",
        check=each(positive, "e.g. --lfcc-scales 1,2,4"),
    )
    dim: int = option(128, help="LFCC embedding size.", check=positive)
    temperature: float = option(0.1, help="InfoNCE temperature.", check=positive)


@functools.lru_cache(maxsize=64)
def _pyramid_matrix(h: int, w: int, scales: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(H*W, sum(s^2)): column j averages the pixels of pyramid cell j (PyTorch's adaptive bins)."""
    basis = torch.eye(h * w, dtype=torch.float64).view(h * w, 1, h, w)
    cols = [F.adaptive_avg_pool2d(basis, s).flatten(1) for s in scales]
    return torch.cat(cols, dim=1).to(device=device, dtype=dtype)


def low_pass_pyramid(x: torch.Tensor, scales: Sequence[int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C * sum(s^2)): average pools to s x s grids, for every scale.

    Pooling is linear, so the whole pyramid is one matmul with a cached pooling matrix (one op
    forward and backward instead of a pooling kernel per scale).
    """
    b, c, h, w = x.shape
    pool = _pyramid_matrix(h, w, tuple(scales), x.device, x.dtype)
    return (x.reshape(b, c, h * w) @ pool).flatten(1)


class Projector(nn.Sequential):
    """Linear-BN-ReLU-Linear into the compact embedding space (hidden width = embedding size).

    The first Linear sees C * sum(s^2) inputs and dominates LFCC's extra cost, so it maps straight
    to the embedding width rather than through a wider hidden layer.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int | None = None) -> None:
        hidden = hidden or out_dim
        super().__init__(
            nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, out_dim),
        )  # fmt: skip


def info_nce(z_student: torch.Tensor, z_teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric sample-level InfoNCE between L2-normalised embeddings (B, d).

    Row i's positive is column i (same sample); every other sample in the (global) batch is a
    negative. Negatives are gathered from all ranks under DDP.
    """
    zs, zt = z_student.float(), z_teacher.float()
    zt_all, offset = gather_with_grad(zt)
    zs_all, _ = gather_with_grad(zs)
    target = torch.arange(zs.shape[0], device=zs.device) + offset
    loss_s2t = F.cross_entropy(zs @ zt_all.T / temperature, target)
    loss_t2s = F.cross_entropy(zt @ zs_all.T / temperature, target)
    return 0.5 * (loss_s2t + loss_t2s)


def stage_pairs(teacher: nn.Module, student: nn.Module, cfg: DistillConfig) -> list[tuple[int, int]]:
    """(teacher tap, student tap) pairs: --lfcc-stages, or --lfcc-num-stages spread over depth."""
    o = cfg.options("lfcc") or LFCCOptions()
    if o.stages:
        t_idx = normalize_indices(teacher, [t for t, _ in o.stages])
        s_idx = normalize_indices(student, [s for _, s in o.stages])
        return list(zip(t_idx, s_idx, strict=True))
    t_idx, s_idx = auto_indices(teacher, o.num_stages), auto_indices(student, o.num_stages)
    k = min(len(t_idx), len(s_idx))
    if k == 0:
        raise ConfigError("no feature taps to pair for LFCC", "pass --lfcc-stages T:S,... explicitly")
    return list(zip(t_idx[-k:], s_idx[-k:], strict=True))


class LFCC(Distiller):
    name = "lfcc"
    rank = 0
    Options = LFCCOptions
    shared = ("ce_weight", "kd_weight", "kd_temperature")

    def __init__(self, student: nn.Module, teacher: nn.Module, cfg: DistillConfig, label_smoothing: float = 0.0):
        super().__init__(student, teacher, cfg, label_smoothing)
        self.pairs = stage_pairs(teacher, student, cfg)
        self.scales = tuple(self.opts.scales)
        cells = sum(s * s for s in self.scales)
        t_ch, s_ch = tap_channels(teacher), tap_channels(student)
        self.student_proj = nn.ModuleList(Projector(s_ch[s] * cells, self.opts.dim) for _, s in self.pairs)
        self.teacher_proj = nn.ModuleList(Projector(t_ch[t] * cells, self.opts.dim) for t, _ in self.pairs)

    def embed(self, feats: list[torch.Tensor], projectors: nn.ModuleList) -> list[torch.Tensor]:
        return [F.normalize(p(low_pass_pyramid(f, self.scales)), dim=1) for f, p in zip(feats, projectors, strict=True)]

    def forward(self, x_student, x_teacher, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        t_logits, t_feats = run_teacher(lambda: forward_with_taps(self.teacher, x_teacher, [t for t, _ in self.pairs]))
        logits, s_feats = forward_with_taps(self.student, x_student, [s for _, s in self.pairs])
        z_s = self.embed(s_feats, self.student_proj)
        z_t = self.embed(t_feats, self.teacher_proj)
        contrastive = sum(info_nce(a, b, self.opts.temperature) for a, b in zip(z_s, z_t, strict=True))
        return logits, {
            "loss_ce": self.cfg.ce_weight * self.ce(logits, labels),
            "loss_kd": self.cfg.kd_weight * kd_loss(logits, t_logits, self.cfg.kd_temperature),
            "loss_lfcc": self.opts.weight * contrastive,
        }
