"""`kd`: Hinton et al. 2015 logit distillation, CE + KL on temperature-softened logits."""

from __future__ import annotations

import torch

from lfcc_pipeline.methods.base import Distiller, kd_loss


class LogitKD(Distiller):
    name = "kd"
    rank = 50
    shared = ("ce_weight", "kd_weight", "kd_temperature")

    def forward(self, x_student, x_teacher, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        t_logits = self.teacher_logits(x_teacher)
        logits = self.student(x_student)
        return logits, {
            "loss_ce": self.cfg.ce_weight * self.ce(logits, labels),
            "loss_kd": self.cfg.kd_weight * kd_loss(logits, t_logits, self.cfg.kd_temperature),
        }
