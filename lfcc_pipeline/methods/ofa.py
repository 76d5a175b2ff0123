"""`ofa`: OFA-KD (Hao et al., NeurIPS 2023, arXiv 2310.19444), following the official Hao840/OFAKD code.

Branch heads on the student's stages project features into the logits space, where the teacher's
logits supervise them with the OFA loss
    L = -sum_c [(p_t + y)^eps - y]_c * log p_s,c     (per sample, mean over the batch; no T^2)
with eps > 1 enhancing the target class. Total: ce_weight * CE(student, y) + kd_weight * OFA(final
logits) + ofa_weight * sum over branches of OFA(branch logits). Only the teacher's logits are used.

Branches (training-time only; export takes the student alone):
- CNN students: a stage at stride r gets log2(r_last / r) separable-conv blocks (DARTS-style,
  each halving the resolution and doubling channels, the last one emitting D = max(student,
  teacher) pooled feature width); a stage at the last stride gets a 1x1 conv to D. Then global
  average pooling and a linear classifier.
- ViT / MLP students: Swin-style 2x2 patch merging down to stride 32 (7x7 at 224 px, as in the
  official code), then max(4 - k, 1) transformer blocks (4 heads) for the k-th branch, a mean over
  tokens and a linear classifier. (The official code reads the CLS token where one exists; timm's
  forward_intermediates returns patch tokens only, so we average them.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lfcc_pipeline.core.config import DistillConfig
from lfcc_pipeline.core.options import at_least, int_list, non_negative, option, positive
from lfcc_pipeline.methods.base import Distiller
from lfcc_pipeline.models.registry import family_of_module
from lfcc_pipeline.models.taps import auto_indices, forward_with_taps, normalize_indices, tap_channels, tap_reductions


@dataclass(frozen=True)
class OFAOptions:
    """OFA-KD's options (flags --ofa-*); TAS reads eps and temperature too."""

    METHOD: ClassVar[str] = "ofa"
    weight: float = option(1.0, help="OFA branch loss weight.", check=non_negative)
    eps: float = option(
        1.5, help="OFA target-enhancement exponent.", check=at_least(1, "the OFA-KD papers use 1.0 to 1.6")
    )
    temperature: float = option(1.0, help="OFA temperature.", check=positive)
    stages: tuple[int, ...] | None = option(
        None,
        metavar="I,...",
        parse=int_list,
        help="Student taps with OFA branches (feature_info indices). [default: 4 spread over depth]",
    )


def ofa_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, eps: float, temperature: float
) -> torch.Tensor:
    """-sum_c [(p_t + onehot)^eps - onehot] * log p_s, mean over the batch (log_softmax for stability)."""
    onehot = F.one_hot(labels, student_logits.shape[1]).float()
    p_t = F.softmax(teacher_logits.float() / temperature, dim=1)
    weight = (p_t + onehot).pow(eps) - onehot
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    return -(weight * log_p_s).sum(dim=1).mean()


class SepConv(nn.Sequential):
    """dw3x3/s2 -> 1x1 -> BN -> ReLU -> dw3x3 -> 1x1 -> BN -> ReLU (halves H, W)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_in, 3, 2, 1, groups=c_in, bias=False), nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=True),
            nn.Conv2d(c_in, c_in, 3, 1, 1, groups=c_in, bias=False), nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        )  # fmt: skip


def cnn_branch(c_in: int, steps: int, width: int, num_classes: int) -> nn.Sequential:
    if steps == 0:
        body: list[nn.Module] = [nn.Conv2d(c_in, width, 1)]
    else:
        body, c = [], c_in
        for j in range(steps):
            c_out = width if j == steps - 1 else c * 2
            body.append(SepConv(c, c_out))
            c = c_out
    return nn.Sequential(*body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


class PatchMerging(nn.Module):
    """Swin-style: concatenate 2x2 neighbours (padding odd sizes), LayerNorm, Linear 4C -> out, activation."""

    def __init__(self, dim: int, out_dim: int, act: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)
        self.act = nn.GELU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, out, H/2, W/2)
        x = F.pad(x, (0, x.shape[3] % 2, 0, x.shape[2] % 2))
        x = torch.cat([x[:, :, i::2, j::2] for j in (0, 1) for i in (0, 1)], dim=1)
        x = self.act(self.reduction(self.norm(x.permute(0, 2, 3, 1))))
        return x.permute(0, 3, 1, 2)


class TokenBranch(nn.Module):
    """ViT/MLP branch: patch merging, transformer blocks, mean over tokens, linear classifier."""

    def __init__(self, c_in: int, merges: int, blocks: int, dim: int, num_classes: int) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block

        mergers: list[nn.Module] = []
        for i in range(merges):
            last_of_several = merges > 1 and i == merges - 1  # the official code drops the last activation
            mergers.append(PatchMerging(c_in if i == 0 else dim, dim, act=not last_of_several))
        if merges == 0 and c_in != dim:
            mergers.append(nn.Conv2d(c_in, dim, 1))
        self.merge = nn.Sequential(*mergers)
        self.blocks = nn.Sequential(*[Block(dim=dim, num_heads=4 if dim % 4 == 0 else 1) for _ in range(blocks)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.merge(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(self.blocks(tokens)).mean(dim=1))


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class OFA(Distiller):
    name = "ofa"
    rank = 10
    Options = OFAOptions
    shared = ("ce_weight", "kd_weight")

    def __init__(self, student: nn.Module, teacher: nn.Module, cfg: DistillConfig, label_smoothing: float = 0.0):
        super().__init__(student, teacher, cfg, label_smoothing)
        stages = self.opts.stages if self.opts.stages else auto_indices(student, 4)
        self.stages = normalize_indices(student, stages)
        channels, reductions = tap_channels(student), tap_reductions(student)
        num_classes = student.num_classes
        family = family_of_module(type(student).__module__.rsplit(".", 1)[-1])
        branches = []
        for k, i in enumerate(self.stages, start=1):
            if family == "cnn":
                width = max(student.num_features, teacher.num_features)
                steps = max(0, round(math.log2(reductions[-1] / reductions[i])))
                branches.append(cnn_branch(channels[i], steps, width, num_classes))
            else:
                merges = max(0, int(math.log2(32 / reductions[i])))
                blocks = max(len(self.stages) - k, 1)
                branches.append(TokenBranch(channels[i], merges, blocks, student.num_features, num_classes))
        self.branches = nn.ModuleList(branches)
        self.branches.apply(_init)

    def forward(self, x_student, x_teacher, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        t_logits = self.teacher_logits(x_teacher)
        logits, feats = forward_with_taps(self.student, x_student, self.stages)
        eps, temp = self.opts.eps, self.opts.temperature
        branch_loss = sum(
            ofa_loss(b(f), t_logits, labels, eps, temp) for b, f in zip(self.branches, feats, strict=True)
        )
        return logits, {
            "loss_ce": self.cfg.ce_weight * self.ce(logits, labels),
            "loss_kd": self.cfg.kd_weight * ofa_loss(logits, t_logits, labels, eps, temp),
            "loss_ofa": self.opts.weight * branch_loss,
        }
