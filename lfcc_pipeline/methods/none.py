"""`none`: the student trained alone with cross-entropy (the baseline every method must beat)."""

from __future__ import annotations

import torch

from lfcc_pipeline.methods.base import Distiller


class NoDistillation(Distiller):
    name = "none"
    rank = 60
    needs_teacher = False

    def forward(self, x_student, x_teacher, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self.student(x_student)
        return logits, {"loss_ce": self.ce(logits, labels)}
