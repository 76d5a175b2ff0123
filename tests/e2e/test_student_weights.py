"""--student-weights from an earlier run's student/model.safetensors starts at that run's accuracy,
and fine-tuning from it stays finite."""

import json
import math
import shutil

import pytest

from lfcc_pipeline.core.config import DataConfig, DistillConfig, ModelsConfig, RunConfig, TrainConfig
from lfcc_pipeline.pipeline.runner import run_pipeline

pytestmark = pytest.mark.slow


def _cfg(out, epochs: int, **models) -> RunConfig:
    cfg = RunConfig(
        models=ModelsConfig(teacher="test_vit", student="test_resnet", img_size=32, pretrained=False),
        data=DataConfig(spec="fashion-mini", train_subset=1280),
        train=TrainConfig(epochs=epochs, teacher_epochs=1, batch_size=64),
        distill=DistillConfig(method="none"),
        out=out,
        device="cpu",
    )
    for k, v in models.items():  # the lead adds the fields (and --student-weights)
        object.__setattr__(cfg.models, k, v)
    return cfg


def _metrics(out):
    return json.loads((out / "student" / "metrics.json").read_text())


def test_student_weights_start_at_the_accuracy_they_were_saved_with(tmp_path):
    out = tmp_path / "run"
    run_pipeline(_cfg(out, epochs=2), stop_after="distill")
    before = _metrics(out)
    saved = tmp_path / "earlier_student.safetensors"
    shutil.copy(out / "student" / "model.safetensors", saved)

    report = run_pipeline(_cfg(out, epochs=0, student_weights=saved), stop_after="distill")
    assert [s.action for s in report.stages] == ["skipped", "ran"]  # the teacher is up to date
    start = _metrics(out)
    assert start["student_source"] == f"weights:{saved}"
    assert (start["val_top1"], start["test_top1"]) == (before["val_top1"], before["test_top1"])
    assert before["test_top1"] > 20  # trained, not chance (10 classes), so the equality means something

    run_pipeline(_cfg(out, epochs=1, student_weights=saved), stop_after="distill")
    tuned = _metrics(out)
    assert tuned["lr"] == pytest.approx(1e-4)  # a tenth of the base lr when starting from weights
    assert all(math.isfinite(h["train_loss"]) for h in tuned["history"])
    assert tuned["test_top1"] > before["test_top1"] - 10  # a fine-tune, not a restart from chance
