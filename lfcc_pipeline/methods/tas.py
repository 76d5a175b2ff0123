"""`tas`: distillation through a hybrid assistant (Li et al., arXiv 2410.12342 "TAS", published at
ICCV 2025 as "Fuse Before Transfer", FBT; official code announced at github.com/liguopeng0923/FBT,
not used here).

The assistant fuses the two models, sharing their weights:
    student's early stages -> bridge (patch embedding + one attention block) -> teacher's last stage + head
The student's early stages are the student's own modules (the assistant's losses train them too);
the teacher's last stage and head are the frozen teacher's own (only the bridge is new). Knowledge
K = (pooled final features, logits) is transferred over three pairs, teacher->assistant,
assistant->student and teacher->student: InfoNCE on the features after global pooling (spatial
smoothing, which removes the architectures' different spatial layouts) and the OFA loss on logits.

Generic over timm models (ours): the split points are taps of timm's `feature_info`. By default the
student's split is the end of the third of its four stages (`auto_indices(student, 4)[-2]`: ResNet
`layer3`, the fourth of six ViT blocks) and the teacher's last stage is whatever runs after the
same point of its own four (ResNet `layer4`, ConvNeXt `stages.3`, Swin `layers.3`, the last quarter
of a ViT's or an MLP's blocks); `tas_split` overrides both. The assistant runs inside the teacher's
own forward: a forward hook on the teacher module at the split appends the bridge's output to the
teacher's batch, so the teacher's early stages run once and everything after the hook (last stage,
final norm, `forward_head`) runs on teacher and assistant samples together. The bridge emits the
layout that module produces (NCHW, NHWC or tokens, with learnable class/prefix tokens) at the
teacher's grid. A teacher whose split module does not produce such a tensor is refused.

Our choices where the paper leaves room or our interface differs:
- The bridge: conv patch embedding (kernel = stride = the ratio of the two strides; 1x1 and a
  resize where the student is coarser), a depthwise 3x3 conv position encoding, LayerNorm and one
  timm ViT block with global attention (the paper uses a Swin block; at the small grids of the last
  stage its windows cover about the whole map).
- Pooled features: the models' own `forward_head(pre_logits=True)` (global average pooling for
  CNNs and MLPs; the class token for DeiT-style ViTs), each through a projector
  (Linear-BN-ReLU-Linear to `tas_dim`, as in LFCC), L2-normalised; fixed temperature
  `tas_temperature` (the paper learns it).
- In each pair the upper model is the target: its features and logits are detached, so T-A trains
  the assistant (bridge and the student's early stages), A-S and T-S train the student.
- The paper's fusion always runs convolution stages before attention stages (for a CNN teacher and
  ViT student it uses the teacher's early stages); ours always takes the student's early stages and
  the teacher's last stage, for any pair.

Total: ce_weight * CE + sum over the three pairs of (kd_weight * OFA(logits; ofa_eps,
ofa_temperature) + tas_nce_weight * InfoNCE(features)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lfcc_pipeline.core.config import DistillConfig
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.core.options import non_negative, option, positive, tap_pair
from lfcc_pipeline.methods.base import Distiller
from lfcc_pipeline.methods.cakd import align_grid
from lfcc_pipeline.methods.lfcc import Projector, info_nce
from lfcc_pipeline.methods.ofa import OFA, ofa_loss
from lfcc_pipeline.models.taps import auto_indices, feature_info, normalize_indices, tap_channels, tap_reductions


@dataclass(frozen=True)
class TASOptions:
    """TAS's options (flags --tas-*); its logit terms take OFA's --ofa-eps and --ofa-temperature."""

    METHOD: ClassVar[str] = "tas"
    nce_weight: float = option(  # InfoNCE on pooled features, per pair (teacher-assistant-student)
        1.0, help="TAS InfoNCE weight.", check=non_negative
    )
    dim: int = option(128, help="TAS embedding size.", check=positive)
    temperature: float = option(0.1, help="TAS InfoNCE temperature.", check=positive)
    split: tuple[int, int] | None = option(  # (teacher tap the assistant's teacher part starts after, student tap)
        None,
        metavar="T:S",
        parse=tap_pair,
        help="TAS assistant: teacher tap its teacher part starts after, student tap feeding the bridge. "
        "[default: the end of the third of four stages]",
    )


def _heads(dim: int) -> int:
    heads = max(1, dim // 64)
    while dim % heads:
        heads -= 1
    return heads


class Bridge(nn.Module):
    """Student map (B, C_s, h, w) -> tokens (B, H*W, C_t) on the teacher's grid (H, W)."""

    def __init__(self, c_in: int, c_out: int, ratio: int, prefix_tokens: int) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block

        self.embed = nn.Conv2d(c_in, c_out, kernel_size=ratio, stride=ratio)
        self.pos = nn.Conv2d(c_out, c_out, 3, padding=1, groups=c_out)
        self.norm = nn.LayerNorm(c_out)
        self.block = Block(c_out, num_heads=_heads(c_out))
        self.prefix = nn.Parameter(torch.zeros(1, prefix_tokens, c_out)) if prefix_tokens else None
        if self.prefix is not None:
            nn.init.trunc_normal_(self.prefix, std=0.02)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = align_grid(self.embed(x), size)
        x = x + self.pos(x)
        return self.block(self.norm(x.flatten(2).transpose(1, 2)))


def split_points(teacher: nn.Module, student: nn.Module, cfg: DistillConfig) -> tuple[int, int]:
    """(teacher tap after which the assistant uses the teacher, student tap that feeds the bridge)."""
    split = (cfg.options("tas") or TASOptions()).split
    if split is not None:
        (t,), (s,) = normalize_indices(teacher, [split[0]]), normalize_indices(student, [split[1]])
        return t, s
    t_idx, s_idx = auto_indices(teacher, 4), auto_indices(student, 4)
    for model, idx in ((teacher, t_idx), (student, s_idx)):
        if len(idx) < 2:
            raise ConfigError(
                f"tas needs a model with at least two feature stages; {type(model).__name__} has {len(idx)}",
                "use --method lfcc, ofa or kd for this pair",
            )
    return t_idx[-2], s_idx[-2]


def transfer_loss(
    lower: tuple[torch.Tensor, torch.Tensor],
    upper: tuple[torch.Tensor, torch.Tensor],
    labels: torch.Tensor,
    eps: float,
    temperature: float,
    tau: float,
    logit_weight: float,
    nce_weight: float,
) -> torch.Tensor:
    """One pair's loss: the lower model's (logits, embeddings) learn from the upper model's.

    logit_weight * OFA(lower logits; upper logits, eps, temperature) + nce_weight * InfoNCE(tau).
    """
    (lower_logits, z_lower), (upper_logits, z_upper) = lower, upper
    logit_term = ofa_loss(lower_logits, upper_logits, labels, eps, temperature)
    return logit_weight * logit_term + nce_weight * info_nce(z_lower, z_upper, tau)


def pooled_width(model: nn.Module) -> int:
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


class TAS(Distiller):
    name = "tas"
    rank = 30
    Options = TASOptions
    shared = ("ce_weight", "kd_weight")
    borrows = (OFA,)

    def __init__(self, student: nn.Module, teacher: nn.Module, cfg: DistillConfig, label_smoothing: float = 0.0):
        super().__init__(student, teacher, cfg, label_smoothing)
        self.t_split, self.s_split = split_points(teacher, student, cfg)
        pair = f"{type(teacher).__name__} -> {type(student).__name__}"
        module_name = feature_info(teacher)[self.t_split].get("module", "")
        try:
            self._split_module = [teacher.get_submodule(module_name)] if module_name else []
        except AttributeError:
            self._split_module = []
        if not self._split_module:
            raise ConfigError(
                f"tas cannot split the teacher of {pair}: its feature tap {self.t_split} names no module "
                f"({module_name!r})",
                "pass --tas-split T:S with another teacher tap, or use --method lfcc or ofa",
            )
        self.pair = pair
        self.t_channels = tap_channels(teacher)[self.t_split]
        self.t_reduction = tap_reductions(teacher)[self.t_split]
        s_reduction = tap_reductions(student)[self.s_split]
        ratio = self.t_reduction // s_reduction if self.t_reduction % s_reduction == 0 else 1
        self.n_prefix = int(getattr(teacher, "num_prefix_tokens", 0) or 0)
        self.bridge = Bridge(tap_channels(student)[self.s_split], self.t_channels, max(ratio, 1), self.n_prefix)
        self.embed_t = Projector(pooled_width(teacher), self.opts.dim)
        self.embed_a = Projector(pooled_width(teacher), self.opts.dim)
        self.embed_s = Projector(pooled_width(student), self.opts.dim)

    def _refuse(self, what: str) -> ConfigError:
        return ConfigError(
            f"tas cannot build the assistant for {self.pair}: {what}",
            "pass --tas-split T:S with other taps, or use --method lfcc or ofa",
        )

    def _assistant_input(self, native: torch.Tensor, s_feat: torch.Tensor, x_teacher: torch.Tensor) -> torch.Tensor:
        """The bridge's output in the layout of `native`, the teacher's own tensor at the split."""
        if not torch.is_tensor(native):
            raise self._refuse(f"the teacher's split module returns {type(native).__name__}, not a tensor")
        c, b = self.t_channels, s_feat.shape[0]
        if native.ndim == 4 and native.shape[1] == c:  # NCHW (CNNs)
            h, w = native.shape[2:]
            return self.bridge(s_feat, (h, w)).transpose(1, 2).reshape(b, c, h, w)
        if native.ndim == 4 and native.shape[3] == c:  # NHWC (Swin)
            h, w = native.shape[1:3]
            return self.bridge(s_feat, (h, w)).reshape(b, h, w, c)
        if native.ndim == 3 and native.shape[2] == c:  # tokens (ViT, MLP-Mixer, ResMLP)
            h, w = (-(-s // self.t_reduction) for s in x_teacher.shape[-2:])
            if native.shape[1] != self.n_prefix + h * w:
                raise self._refuse(f"{native.shape[1]} teacher tokens at the split, expected {self.n_prefix} + {h}x{w}")
            tokens = self.bridge(s_feat, (h, w))
            if self.bridge.prefix is not None:
                tokens = torch.cat([self.bridge.prefix.expand(b, -1, -1), tokens], dim=1)
            return tokens
        raise self._refuse(f"the teacher's tensor at the split has shape {tuple(native.shape)}, not {c} channels")

    def teacher_and_assistant(self, x_teacher: torch.Tensor, s_feat: torch.Tensor) -> torch.Tensor:
        """The teacher's forward_features with the assistant's samples appended at the split: (2B, ...)."""
        fired: list[int] = []

        def inject(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
            fired.append(1)
            if len(fired) > 1:
                raise self._refuse("the teacher calls its split module more than once per forward")
            a = self._assistant_input(out, s_feat, x_teacher)
            return torch.cat([out.detach(), a.to(out.dtype)], dim=0)

        handle = self._split_module[0].register_forward_hook(inject)
        try:
            feats = self.teacher.forward_features(x_teacher)
        finally:
            handle.remove()
        if not fired:
            raise self._refuse("the teacher's forward_features never runs the module its feature tap names")
        return feats

    def forward(self, x_student, x_teacher, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b = x_student.shape[0]
        final, (s_feat,) = self.student.forward_intermediates(
            x_student, indices=[self.s_split], intermediates_only=False
        )
        logits, s_pool = self.student.forward_head(final), self.student.forward_head(final, pre_logits=True)
        feats = self.teacher_and_assistant(x_teacher, s_feat)
        both_logits, both_pool = self.teacher.forward_head(feats), self.teacher.forward_head(feats, pre_logits=True)
        t_logits, a_logits = both_logits[:b].detach(), both_logits[b:]
        z_t = F.normalize(self.embed_t(both_pool[:b].detach()), dim=1)
        z_a = F.normalize(self.embed_a(both_pool[b:]), dim=1)
        z_s = F.normalize(self.embed_s(s_pool), dim=1)
        cfg = self.cfg
        ofa = OFA.options_of(cfg)
        weights = (ofa.eps, ofa.temperature, self.opts.temperature, cfg.kd_weight, self.opts.nce_weight)
        return logits, {
            "loss_ce": cfg.ce_weight * self.ce(logits, labels),
            "loss_ta": transfer_loss((a_logits, z_a), (t_logits, z_t), labels, *weights),
            "loss_as": transfer_loss((logits, z_s), (a_logits.detach(), z_a.detach()), labels, *weights),
            "loss_ts": transfer_loss((logits, z_s), (t_logits, z_t), labels, *weights),
        }
