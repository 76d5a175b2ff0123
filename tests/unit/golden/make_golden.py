"""Regenerate the golden loss values (only when the maths is meant to change; say so in the commit).

python tests/unit/golden/make_golden.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lfcc_pipeline.methods.base import kd_loss
from lfcc_pipeline.methods.lfcc import info_nce, low_pass_pyramid
from lfcc_pipeline.methods.ofa import ofa_loss

HERE = Path(__file__).resolve().parent


def golden_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240528)
    z_s = rng.standard_normal((8, 16)).astype(np.float32)
    z_t = rng.standard_normal((8, 16)).astype(np.float32)
    return {
        "student_logits": (3 * rng.standard_normal((8, 10))).astype(np.float32),
        "teacher_logits": (3 * rng.standard_normal((8, 10))).astype(np.float32),
        "labels": rng.integers(0, 10, 8).astype(np.int64),
        "z_student": z_s / np.linalg.norm(z_s, axis=1, keepdims=True),
        "z_teacher": z_t / np.linalg.norm(z_t, axis=1, keepdims=True),
        "feature_map": rng.standard_normal((2, 3, 8, 8)).astype(np.float32),
    }


def compute(inputs: dict[str, np.ndarray]) -> dict[str, float]:
    t = {k: torch.from_numpy(v) for k, v in inputs.items()}
    pyramid = low_pass_pyramid(t["feature_map"], (1, 2, 4))
    return {
        "kd_T4": kd_loss(t["student_logits"], t["teacher_logits"], 4.0).item(),
        "kd_T1": kd_loss(t["student_logits"], t["teacher_logits"], 1.0).item(),
        "ofa_eps1.5_T1": ofa_loss(t["student_logits"], t["teacher_logits"], t["labels"], 1.5, 1.0).item(),
        "ofa_eps1_T2": ofa_loss(t["student_logits"], t["teacher_logits"], t["labels"], 1.0, 2.0).item(),
        "info_nce_tau0.1": info_nce(t["z_student"], t["z_teacher"], 0.1).item(),
        "info_nce_tau0.5": info_nce(t["z_student"], t["z_teacher"], 0.5).item(),
        "pyramid_sum": pyramid.sum().item(),
        "pyramid_sq_sum": pyramid.pow(2).sum().item(),
    }


if __name__ == "__main__":
    inputs = golden_inputs()
    np.savez(HERE / "loss_inputs.npz", **inputs)
    (HERE / "loss_values.json").write_text(json.dumps(compute(inputs), indent=2) + "\n")
    print("wrote", HERE / "loss_inputs.npz", HERE / "loss_values.json")
