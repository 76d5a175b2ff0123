"""`lfcc`: low-frequency components-based contrastive KD (arXiv 2405.18524), as DESIGN.md section 6 states it.

Per stage pair (teacher tap, student tap):
  1. a multi-scale low-pass filter (methods/low_pass.py: grid pools, or Gaussian blurs then a common
     grid), flattened and concatenated;
  2. a projector per side (Linear[-BN-ReLU-Linear...]) into a compact `lfcc_dim`-d space, L2-normalised;
  3. sample-level InfoNCE: the positive of a student embedding is the teacher embedding of the
     same sample, the negatives are the other samples' teacher embeddings (gathered from every
     rank under DDP), plus, with --lfcc-queue K, the K most recent earlier teacher embeddings;
     symmetric; temperature `lfcc_temperature` (learnable with --lfcc-learn-temperature).
Total: ce_weight * CE + kd_weight * KD(T) + lfcc_weight * ramp * sum over stages, the ramp rising
linearly from 0 to 1 over --lfcc-warmup-epochs.

The paper's exact hyper-parameters are not public; our defaults are chosen on validation top-1 of
benchmarks/compare_methods.py (the README's ablation table says which choice is the paper's and
which is ours). The teacher backbone is frozen and runs without autograd; so are its projectors (fixed
random maps, the ablation's best on the vit-cnn pair) unless --lfcc-train-teacher-proj. Projectors are training-time only: export takes
`distiller.student`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lfcc_pipeline.core.config import DistillConfig
from lfcc_pipeline.core.distributed import gather_with_grad
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.core.options import at_least, each, int_list, non_negative, option, positive, tap_pairs
from lfcc_pipeline.methods.base import Distiller, kd_loss, run_teacher
from lfcc_pipeline.methods.low_pass import FILTERS, cells, low_pass
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
    filter: str = option("pool", help="Low-pass filter: pool (grid pools at --lfcc-scales) | gauss "
                         "(Gaussian blurs of --lfcc-blur-sizes, then a --lfcc-blur-grid grid).", choices=FILTERS)  # fmt: skip
    blur_sizes: tuple[int, ...] = option(
        (1, 3, 5), parse=int_list, help="Gaussian blur kernel sizes (--lfcc-filter gauss; 1: unfiltered).",
        check=each(positive, "e.g. --lfcc-blur-sizes 1,3,5"),
    )  # fmt: skip
    blur_grid: int = option(4, help="Common grid after the blurs (--lfcc-filter gauss).", check=positive)
    dim: int = option(128, help="LFCC embedding size.", check=positive)
    proj_depth: int = option(2, help="Projector Linear layers (1: one Linear; 2: Linear-BN-ReLU-Linear; ...).",
                             check=at_least(1))  # fmt: skip
    proj_hidden: int = option(0, help="Projector hidden width (0: the embedding size).", check=non_negative)
    # False chosen on validation top-1 (vit-cnn ablation, +0.55 over trained teacher projectors)
    train_teacher_proj: bool = option(False, negatable=True, help="Train the teacher-side projectors.")
    temperature: float = option(0.1, help="InfoNCE temperature (the initial one when learnable).", check=positive)
    learn_temperature: bool = option(False, negatable=True, help="Learn the InfoNCE temperature.")
    queue: int = option(0, help="Earlier batches' teacher embeddings kept as extra negatives (0: batch only).",
                        check=non_negative)  # fmt: skip
    warmup_epochs: float = option(0.0, help="Epochs over which the LFCC weight ramps up from 0.", check=non_negative)

    def design(self) -> tuple:
        """The low-pass filter as methods/low_pass.py takes it."""
        if self.filter == "pool":
            return ("pool", tuple(self.scales))
        return ("gauss", tuple(self.blur_sizes), self.blur_grid)


class Projector(nn.Sequential):
    """`depth` Linear layers into the compact embedding space, BN-ReLU between them (depth 2:
    Linear-BN-ReLU-Linear; depth 1: one Linear); hidden width = embedding size unless given.

    The first Linear sees C * cells inputs and dominates LFCC's extra cost, so by default it maps
    straight to the embedding width rather than through a wider hidden layer.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int | None = None, depth: int = 2) -> None:
        hidden = hidden or out_dim
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(depth - 1):
            layers += [nn.Linear(width, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            width = hidden
        super().__init__(*layers, nn.Linear(width, out_dim))


def info_nce(
    z_student: torch.Tensor,
    z_teacher: torch.Tensor,
    temperature: float | torch.Tensor,
    queue: torch.Tensor | None = None,
    queue_valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric sample-level InfoNCE between L2-normalised embeddings (B, d).

    Row i's positive is column i (same sample); every other sample in the (global) batch is a
    negative. Negatives are gathered from all ranks under DDP. `queue` (K, d) adds earlier teacher
    embeddings as negatives of the student-to-teacher direction (rows where `queue_valid` is False
    are ignored).
    """
    zs, zt = z_student.float(), z_teacher.float()
    zt_all, offset = gather_with_grad(zt)
    zs_all, _ = gather_with_grad(zs)
    target = torch.arange(zs.shape[0], device=zs.device) + offset
    logits_s2t = zs @ zt_all.T
    if queue is not None:
        extra = zs @ queue.float().T
        if queue_valid is not None:
            extra = extra.masked_fill(~queue_valid, float("-inf"))
        logits_s2t = torch.cat([logits_s2t, extra], dim=1)
    loss_s2t = F.cross_entropy(logits_s2t / temperature, target)
    loss_t2s = F.cross_entropy(zt @ zs_all.T / temperature, target)
    return 0.5 * (loss_s2t + loss_t2s)


class NegativeQueue(nn.Module):
    """A FIFO of the last `size` teacher embeddings (from every rank), as buffers so checkpoints and
    resumes keep it; fixed shapes and a validity mask, so it needs no host sync."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("items", torch.zeros(size, dim))
        self.register_buffer("valid", torch.zeros(size, dtype=torch.bool))
        self.register_buffer("head", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, z: torch.Tensor) -> None:
        z = gather_with_grad(z.detach().float())[0][-self.items.shape[0] :]  # no_grad: a plain all_gather
        idx = (self.head + torch.arange(z.shape[0], device=z.device)) % self.items.shape[0]
        self.items.index_copy_(0, idx, z)
        self.valid.index_fill_(0, idx, True)
        self.head.copy_((self.head + z.shape[0]) % self.items.shape[0])


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
        o = self.opts
        self.pairs = stage_pairs(teacher, student, cfg)
        self.design = o.design()
        n = cells(self.design)
        t_ch, s_ch = tap_channels(teacher), tap_channels(student)

        def proj(channels: int) -> Projector:
            return Projector(channels * n, o.dim, o.proj_hidden or None, o.proj_depth)

        self.student_proj = nn.ModuleList(proj(s_ch[s]) for _, s in self.pairs)
        self.teacher_proj = nn.ModuleList(proj(t_ch[t]) for t, _ in self.pairs)
        self.teacher_proj.requires_grad_(o.train_teacher_proj)
        # log(1 / tau), as CLIP learns it; capped at tau = 0.01 in forward.
        self.log_inv_tau = nn.Parameter(torch.tensor(math.log(1 / o.temperature)), requires_grad=o.learn_temperature)
        self.queues = nn.ModuleList(NegativeQueue(o.queue, o.dim) for _ in self.pairs) if o.queue else None
        # Epochs trained so far (set by the training loop; a buffer, so torch.compile does not specialise on it).
        self.register_buffer("epochs_done", torch.zeros(()), persistent=False)

    def set_progress(self, epochs: float) -> None:
        self.epochs_done.fill_(epochs)

    def embed(self, feats: list[torch.Tensor], projectors: nn.ModuleList) -> list[torch.Tensor]:
        return [F.normalize(p(low_pass(f, self.design)), dim=1) for f, p in zip(feats, projectors, strict=True)]

    def temperature(self) -> torch.Tensor:
        return 1 / self.log_inv_tau.clamp(max=math.log(100)).exp()

    def ramp(self) -> torch.Tensor | float:
        """The LFCC weight's warm-up factor: epochs_done / warmup_epochs, capped at 1."""
        if self.opts.warmup_epochs <= 0:
            return 1.0
        return (self.epochs_done / self.opts.warmup_epochs).clamp(max=1.0)

    def contrastive(self, z_s: list[torch.Tensor], z_t: list[torch.Tensor]) -> torch.Tensor:
        tau = self.temperature()
        total = torch.zeros((), device=z_s[0].device)
        for i, (a, b) in enumerate(zip(z_s, z_t, strict=True)):
            q = self.queues[i] if self.queues is not None else None
            # items cloned: backward reads them after the push below changes them in place (the mask
            # is read as ~valid, already a new tensor)
            items, valid = (q.items.clone(), q.valid) if q is not None else (None, None)
            total = total + info_nce(a, b, tau, items, valid)
            if q is not None and self.training:
                q.push(b)
        return total

    def forward(self, x_student, x_teacher, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        t_logits, t_feats = run_teacher(lambda: forward_with_taps(self.teacher, x_teacher, [t for t, _ in self.pairs]))
        logits, s_feats = forward_with_taps(self.student, x_student, [s for _, s in self.pairs])
        z_s = self.embed(s_feats, self.student_proj)
        z_t = self.embed(t_feats, self.teacher_proj)
        contrastive = self.contrastive(z_s, z_t)
        return logits, {
            "loss_ce": self.cfg.ce_weight * self.ce(logits, labels),
            "loss_kd": self.cfg.kd_weight * kd_loss(logits, t_logits, self.cfg.kd_temperature),
            "loss_lfcc": self.opts.weight * self.ramp() * contrastive,
        }
