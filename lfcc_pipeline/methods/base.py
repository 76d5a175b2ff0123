"""The Distiller interface: every method is one module holding student (and teacher).

`forward(x_student, x_teacher, labels)` returns `(student_logits, {"loss_ce": ..., ...})`; the
training loop sums the losses. Inputs are already normalised for each model. The teacher, when
there is one, is frozen and kept in eval mode; its weights never enter checkpoints or the optimizer.
Everything else a method adds (projectors, branch heads) is training-time only: export takes
`distiller.student` alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lfcc_pipeline.core.config import DistillConfig, as_dict


class Distiller(nn.Module):
    """A method: `name` (its --method), `Options` (its own options dataclass, flags --<name>-*),
    `shared` (the DistillConfig fields it reads), `borrows` (methods whose options it reads too),
    `rank` (its place in listings). All of them enter the distill stage's fingerprint."""

    name: ClassVar[str]
    rank: ClassVar[int] = 100
    needs_teacher: ClassVar[bool] = True
    Options: ClassVar[type | None] = None
    shared: ClassVar[tuple[str, ...]] = ()
    borrows: ClassVar[tuple[type[Distiller], ...]] = ()

    def __init__(self, student: nn.Module, teacher: nn.Module | None, cfg: DistillConfig, label_smoothing: float = 0.0):
        super().__init__()
        self.student = student
        self.cfg = cfg
        self.opts = self.options_of(cfg)
        self.label_smoothing = label_smoothing
        # Kept outside the module tree: not in state_dict(), parameters() or DDP's buckets.
        self._teacher = [teacher] if teacher is not None else []
        if teacher is not None:
            teacher.requires_grad_(False).eval()

    @classmethod
    def options_of(cls, cfg: DistillConfig) -> Any:
        """This method's options in `cfg` (its defaults where `cfg` has none); None without Options."""
        if cls.Options is None:
            return None
        return cfg.options(cls.name) or cls.Options()

    @classmethod
    def fingerprint(cls, cfg: DistillConfig) -> dict[str, Any]:
        """Every option this method reads: the shared fields, its own options, those it borrows."""
        out: dict[str, Any] = {k: as_dict(getattr(cfg, k)) for k in cls.shared}
        for m in (cls, *cls.borrows):
            if m.Options is not None:
                out[m.name] = as_dict(m.options_of(cfg))
        return out

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    def to(self, *args, **kwargs):  # noqa: D102 - moves the (unregistered) teacher too
        if self._teacher:
            self._teacher[0].to(*args, **kwargs)
        return super().to(*args, **kwargs)

    def train(self, mode: bool = True):  # noqa: D102 - the teacher stays in eval mode
        super().train(mode)
        if self._teacher:
            self._teacher[0].eval()
        return self

    def set_progress(self, epochs: float) -> None:
        """Told by the training loop before every step: the epochs trained so far (fractional).
        Methods with a schedule of their own (LFCC's warm-up) override it."""

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return (p for p in self.parameters() if p.requires_grad)

    def ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)

    def teacher_logits(self, x_teacher: torch.Tensor) -> torch.Tensor:
        return run_teacher(lambda: self.teacher(x_teacher))

    def forward(
        self, x_student: torch.Tensor, x_teacher: torch.Tensor | None, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError


def run_teacher(fn):
    """Run the frozen teacher under inference mode (no autograd bookkeeping at all) and return its
    outputs as ordinary tensors (a clone), which losses may save for the student's backward."""
    with torch.inference_mode():
        out = fn()
    return torch.utils._pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, out)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton KD: KL(softmax(t/T) || softmax(s/T)) * T^2, mean over the batch."""
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * temperature**2
