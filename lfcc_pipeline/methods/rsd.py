"""`rsd`: redundancy suppression distillation ("Cross-architecture distillation made simple with
redundancy suppression", Zhang, Liu, Ran, Ma, ICCV 2025, arXiv 2507.21844).

The student's penultimate (pre-logits) feature passes a small adapter (Linear to gamma x its width,
BatchNorm, GELU, Linear to the teacher's width; the adapter keeps the RSD objective off the
student's own representation). Both sides are standardised over the batch; their cross-correlation
matrix C (teacher dims x adapted student dims) is pushed to the identity: the diagonal to 1
(invariance across architectures) and the off-diagonal to 0, down-weighted by kappa (decorrelation,
i.e. redundancy suppression). Total: ce_weight * CE + weight * RSD (+ logit_weight * KD, ours, off
by default as in the official code).

Defaults from the authors' code (spacewanderx/RSD, train.py): weight 0.1, kappa 0.01, gamma 2,
the last stage (-1: the pooled pre-logits feature).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from lfcc_pipeline.core.config import DistillConfig
from lfcc_pipeline.core.options import at_least, in_range, non_negative, option
from lfcc_pipeline.methods.base import Distiller, kd_loss, run_teacher
from lfcc_pipeline.methods.tas import pooled_width


@dataclass(frozen=True)
class RSDOptions:
    """RSD's options (flags --rsd-*), the authors' defaults."""

    METHOD: ClassVar[str] = "rsd"
    weight: float = option(0.1, help="RSD loss weight (the authors' 0.1).", check=non_negative)
    kappa: float = option(0.01, help="RSD weight of the off-diagonal (decorrelation) terms.", check=in_range(0, 1))
    gamma: int = option(2, help="RSD adapter hidden width, in multiples of the student's feature width.",
                        check=at_least(1))  # fmt: skip
    logit_weight: float = option(
        0.0, help="RSD: weight of a logit KD term at --kd-temperature (ours; 0 as the official code).",
        check=non_negative,
    )  # fmt: skip


def standardise(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(B, D): zero mean, unit (biased) standard deviation per dimension over the batch."""
    return (x - x.mean(dim=0)) / (x.std(dim=0, unbiased=False) + eps)


def rsd_loss(z_student: torch.Tensor, z_teacher: torch.Tensor, kappa: float) -> torch.Tensor:
    """sum over C of (C - I)^2 with off-diagonal terms x kappa; C = standardised teacher^T @ student / B."""
    zs, zt = standardise(z_student.float()), standardise(z_teacher.float())
    c = zt.T @ zs / zs.shape[0]
    eye = torch.eye(c.shape[0], c.shape[1], device=c.device, dtype=c.dtype)
    sq = (c - eye).pow(2)
    return (sq * eye).sum() + kappa * (sq * (1 - eye)).sum()


class Adapter(nn.Sequential):
    """Linear(no bias)-BN-GELU-Linear(no bias): student width -> gamma x it -> teacher width."""

    def __init__(self, c_in: int, c_out: int, gamma: int) -> None:
        hidden = c_in * gamma
        super().__init__(nn.Linear(c_in, hidden, bias=False), nn.BatchNorm1d(hidden), nn.GELU(),
                         nn.Linear(hidden, c_out, bias=False))  # fmt: skip
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)


class RSD(Distiller):
    name = "rsd"
    rank = 40
    Options = RSDOptions
    shared = ("ce_weight", "kd_temperature")

    def __init__(self, student: nn.Module, teacher: nn.Module, cfg: DistillConfig, label_smoothing: float = 0.0):
        super().__init__(student, teacher, cfg, label_smoothing)
        self.adapter = Adapter(pooled_width(student), pooled_width(teacher), self.opts.gamma)

    def forward(self, x_student, x_teacher, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        def teacher_side():
            feats = self.teacher.forward_features(x_teacher)
            return self.teacher.forward_head(feats), self.teacher.forward_head(feats, pre_logits=True)

        t_logits, t_pool = run_teacher(teacher_side)
        feats = self.student.forward_features(x_student)
        logits, s_pool = self.student.forward_head(feats), self.student.forward_head(feats, pre_logits=True)
        losses = {
            "loss_ce": self.cfg.ce_weight * self.ce(logits, labels),
            "loss_rsd": self.opts.weight
            * rsd_loss(self.adapter(s_pool.flatten(1)), t_pool.flatten(1), self.opts.kappa),
        }
        if self.opts.logit_weight > 0:
            losses["loss_kd"] = self.opts.logit_weight * kd_loss(logits, t_logits, self.cfg.kd_temperature)
        return logits, losses
