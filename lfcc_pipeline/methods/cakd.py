"""`cakd`: Cross-Architecture Knowledge Distillation (Liu et al., ACCV 2022, arXiv 2207.05273).

No official code is public; this follows the paper's description. Where the paper leaves a detail
open, the choice is ours and marked (ours) here and in the README.

Two projectors map the student's last feature map (timm's last tap, NCHW for every family) into two
spaces of the teacher's last layer, whose token grid sets the resolution (the student's map is
average-pooled or bilinearly resized to it). `cakd_taps` picks other taps: at small inputs a
stride-32 CNN teacher's last map is 1 x 1, where attention maps say nothing.

- PCA, the partially cross attention projector: three 3x3 convs turn the student map into Q, K, V
  with the teacher's head layout. The teacher's Q, K, V come from the qkv projection of its last
  attention block (timm's global `Attention`: ViT, DeiT); teachers without one (CNNs, Swin's window
  attention, MLPs) stand in their LayerNorm-ed last feature map for Q = K = V, split into heads of
  64 channels, and both sides' maps then leave out each token's relation to itself, which would
  otherwise dominate every row (ours). While training, g(.) replaces each entry of the student's
  Q, K and V by the teacher's with probability `cakd_replace_prob` (ours: 0.5, entry by entry, on
  Q, K and V). Loss: the squared L2 distance between matching rows of the attention maps
  softmax(QK^T/sqrt(d)) plus the same for the value relations softmax(VV^T/sqrt(d)), averaged over
  rows, heads and samples (ours: the softmax on the value relation, so both terms compare row
  distributions, and the average over rows, where the paper's squared norm sums the whole N x N
  map and so grows with the token count).
- GL, the group-wise linear projector: one linear map shared by every group of positions takes a
  student position to the r x r teacher tokens it covers (r = stride ratio, student coarser) or an
  r x r group of student positions to one teacher token (student finer); MSE to the teacher's last
  feature map, LayerNorm-ed over channels (ours: it puts CNN, ViT and MLP teachers on one scale).
- Multi-view robust training (`cakd_multiview`, off by default: it doubles the batch): each step
  adds a randomly cropped and flipped view of the batch (the same view for teacher and student) and
  a small discriminator that tells the teacher's tokens from the GL projector's; the student fools
  it through a gradient-reversal layer scaled by `cakd_adv_weight` (ours: one optimizer step
  trains both sides).

Total: ce_weight * CE + cakd_pca_weight * PCA + cakd_gl_weight * GL (+ the adversarial loss). The
teacher backbone is frozen; projectors and discriminator are training-time only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lfcc_pipeline.core.config import DistillConfig
from lfcc_pipeline.core.errors import ModelError
from lfcc_pipeline.core.options import in_range, non_negative, option, tap_pair
from lfcc_pipeline.methods.base import Distiller
from lfcc_pipeline.models.taps import feature_info, forward_with_taps, normalize_indices, tap_channels, tap_reductions

HEAD_DIM = 64  # head width for teachers without an attention block to read (ours)


@dataclass(frozen=True)
class CAKDOptions:
    """CAKD's options (flags --cakd-*)."""

    METHOD: ClassVar[str] = "cakd"
    pca_weight: float = option(  # partially cross attention projector: attention maps + value relations
        1.0, help="CAKD attention-projector loss weight.", check=non_negative
    )
    gl_weight: float = option(  # group-wise linear projector: MSE to the teacher's last feature map
        1.0, help="CAKD group-wise linear loss weight.", check=non_negative
    )
    replace_prob: float = option(
        0.5,
        help="CAKD: chance that an entry of the student's Q/K/V is replaced by the teacher's.",
        check=in_range(0, 1, high_open=True, hint="0.5 is the default"),
    )
    multiview: bool = option(
        False,
        negatable=True,
        help="CAKD multi-view robust training (augmented views + discriminator; twice the compute).",
    )
    adv_weight: float = option(0.1, help="CAKD adversarial gradient factor.", check=non_negative)
    taps: tuple[int, int] | None = option(  # None: the last tap of each
        None,
        metavar="T:S",
        parse=tap_pair,
        help="CAKD: the teacher and student taps the projectors align. [default: the last of each]",
    )


def align_grid(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an NCHW map to `size`: average pooling where it shrinks, bilinear where it grows."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def heads_of(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, heads, H*W, C / heads)."""
    b, c, h, w = x.shape
    return x.reshape(b, heads, c // heads, h * w).transpose(-2, -1)


def relation(a: torch.Tensor, b: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
    """softmax(a b^T / sqrt(d)) over the last axis, in float32; `exclude_self`: each row over the other tokens."""
    a, b = a.float(), b.float()
    logits = a @ b.transpose(-2, -1) * a.shape[-1] ** -0.5
    if exclude_self and logits.shape[-1] > 1:
        eye = torch.eye(logits.shape[-1], dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(eye, float("-inf"))
    return F.softmax(logits, dim=-1)


def row_distance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance between matching rows (summed over keys), averaged over rows, heads and samples."""
    return (p - q).pow(2).sum(dim=-1).mean()


def partial_replace(student: torch.Tensor, teacher: torch.Tensor, prob: float) -> torch.Tensor:
    """g(.): each entry of `student` becomes the teacher's with probability `prob`."""
    if prob <= 0:
        return student
    mask = torch.rand(student.shape, device=student.device) < prob
    return torch.where(mask, teacher.to(student.dtype), student)


def pca_loss(
    qkv_s: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    qkv_t: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    exclude_self: bool = False,
) -> torch.Tensor:
    """Attention-map term plus value-relation term; every tensor (B, heads, N, d)."""
    (qs, ks, vs), (qt, kt, vt) = qkv_s, qkv_t
    attention = row_distance(relation(qs, ks, exclude_self), relation(qt, kt, exclude_self))
    return attention + row_distance(relation(vs, vs, exclude_self), relation(vt, vt, exclude_self))


def _divides(small: int, big: int) -> int:
    return big // small if big > small and big % small == 0 else 1


class GroupLinear(nn.Module):
    """Student map -> the teacher's token layout with one linear map shared by every position group."""

    def __init__(self, c_in: int, c_out: int, student_reduction: int, teacher_reduction: int) -> None:
        super().__init__()
        self.up = _divides(teacher_reduction, student_reduction)  # a student position covers up x up tokens
        self.down = _divides(student_reduction, teacher_reduction)  # down x down positions make one token
        self.proj = nn.Conv2d(c_in * self.down**2, c_out * self.up**2, 1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        if self.down > 1:
            x = F.pixel_unshuffle(align_grid(x, (h * self.down, w * self.down)), self.down)
        elif self.up > 1:
            x = align_grid(x, (-(-h // self.up), -(-w // self.up)))
        x = self.proj(x)
        if self.up > 1:
            x = F.pixel_shuffle(x, self.up)
        return align_grid(x, size)


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.factor * grad, None


def reverse_grad(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Identity forward; the gradient flows back multiplied by -factor."""
    return _ReverseGrad.apply(x, factor)


def random_views(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """The same random crop (60-100% of each side), shift and horizontal flip per sample, applied to every x."""
    b = xs[0].shape[0]
    r = torch.rand(b, 4)  # the CPU RNG: checkpointed with the run, so a resumed run draws the same views
    scale = 0.6 + 0.4 * r[:, 0]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = scale * torch.where(r[:, 3] < 0.5, -1.0, 1.0)
    theta[:, 1, 1] = scale
    theta[:, 0, 2] = (1 - scale) * (2 * r[:, 1] - 1)
    theta[:, 1, 2] = (1 - scale) * (2 * r[:, 2] - 1)
    out = []
    for x in xs:
        grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
        out.append(F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False))
    return out


def _global_attention(teacher: nn.Module, module_name: str) -> nn.Module | None:
    """timm's global `Attention` of the block that makes the teacher's last tap, or None."""
    from timm.layers import Attention

    try:
        attn = getattr(teacher.get_submodule(module_name), "attn", None)
    except AttributeError:
        return None
    if isinstance(attn, Attention) and isinstance(attn.qkv, nn.Linear) and attn.qkv.out_features % 3 == 0:
        return attn
    return None


class CAKD(Distiller):
    name = "cakd"
    rank = 20
    Options = CAKDOptions
    shared = ("ce_weight",)

    def __init__(self, student: nn.Module, teacher: nn.Module, cfg: DistillConfig, label_smoothing: float = 0.0):
        super().__init__(student, teacher, cfg, label_smoothing)
        t_tap, s_tap = self.opts.taps or (-1, -1)
        (self.t_tap,), (self.s_tap,) = normalize_indices(teacher, [t_tap]), normalize_indices(student, [s_tap])
        c_t, c_s = tap_channels(teacher)[self.t_tap], tap_channels(student)[self.s_tap]
        attn = _global_attention(teacher, feature_info(teacher)[self.t_tap]["module"])
        self._t_attn = [attn] if attn is not None else []  # a part of the teacher: kept out of the module tree
        if attn is not None:
            dim, self.heads = attn.qkv.out_features // 3, attn.num_heads
        else:
            dim, self.heads = c_t, max(1, c_t // HEAD_DIM)
            while c_t % self.heads:
                self.heads -= 1
        self.pca = nn.ModuleList(nn.Conv2d(c_s, dim, 3, padding=1) for _ in "qkv")
        self.gl = GroupLinear(c_s, c_t, tap_reductions(student)[self.s_tap], tap_reductions(teacher)[self.t_tap])
        self.disc = (
            nn.Sequential(nn.Linear(c_t, 128), nn.LeakyReLU(0.2, inplace=True), nn.Linear(128, 1))
            if self.opts.multiview
            else None
        )

    @torch.no_grad()
    def teacher_spaces(self, x_teacher: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The teacher's last feature map (NCHW) and its (Q, K, V), each (B, heads, N, d)."""
        captured: list[torch.Tensor] = []
        attn = self._t_attn[0] if self._t_attn else None
        hook = None
        if attn is not None:
            hook = attn.qkv.register_forward_hook(lambda m, i, o: captured.append(o))
        try:
            (t_map,) = self.teacher.forward_intermediates(x_teacher, indices=[self.t_tap], intermediates_only=True)
        finally:
            if hook is not None:
                hook.remove()
        b, c, h, w = t_map.shape
        if attn is None:
            tokens = heads_of(F.layer_norm(t_map.float().permute(0, 2, 3, 1), (c,)).permute(0, 3, 1, 2), self.heads)
            return t_map, (tokens, tokens, tokens)
        qkv = captured[-1] if len(captured) == 1 else None
        if qkv is None or qkv.shape[0] != b or qkv.shape[1] < h * w:
            raise ModelError(
                f"cakd could not read the attention of {type(self.teacher).__name__}'s last block",
                "use --method lfcc or ofa for this teacher",
            )
        n, heads = qkv.shape[1], self.heads
        q, k, v = qkv.float().reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = attn.q_norm(q), attn.k_norm(k)
        prefix = n - h * w  # class/register tokens: only patch tokens have a student counterpart
        return t_map, (q[:, :, prefix:], k[:, :, prefix:], v[:, :, prefix:])

    def forward(self, x_student, x_teacher, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b = x_student.shape[0]
        multiview = self.training and self.disc is not None
        if multiview:
            v_s, v_t = random_views([x_student, x_teacher])
            x_student, x_teacher = torch.cat([x_student, v_s]), torch.cat([x_teacher, v_t])
        t_map, qkv_t = self.teacher_spaces(x_teacher)
        logits, (s_map,) = forward_with_taps(self.student, x_student, [self.s_tap])
        grid = t_map.shape[-2:]

        s_grid = align_grid(s_map, grid)
        qkv_s = [heads_of(conv(s_grid), self.heads) for conv in self.pca]
        if self.training:
            qkv_s = [partial_replace(s, t, self.opts.replace_prob) for s, t in zip(qkv_s, qkv_t, strict=True)]
        target = F.layer_norm(t_map.float().permute(0, 2, 3, 1), (t_map.shape[1],))  # (B, H, W, C)
        projected = self.gl(s_map, grid).float().permute(0, 2, 3, 1)
        losses = {
            "loss_ce": self.cfg.ce_weight * self.ce(logits[:b], labels),
            "loss_pca": self.opts.pca_weight * pca_loss(tuple(qkv_s), qkv_t, exclude_self=not self._t_attn),
            "loss_gl": self.opts.gl_weight * F.mse_loss(projected, target),
        }
        if multiview:
            real = self.disc(target.flatten(1, 2))
            fake = self.disc(reverse_grad(projected, self.opts.adv_weight).flatten(1, 2))
            losses["loss_adv"] = F.binary_cross_entropy_with_logits(
                real, torch.ones_like(real)
            ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        return logits[:b], losses
