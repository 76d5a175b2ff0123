"""Resuming from a checkpoint reproduces the uninterrupted run exactly (CPU, fixed seed)."""

import contextlib

import torch

from lfcc_pipeline.core.config import OptimConfig
from lfcc_pipeline.core.errors import StageFailed
from lfcc_pipeline.data.loader import Batches
from lfcc_pipeline.data.sources import load_dataset
from lfcc_pipeline.data.specs import DataSpec
from lfcc_pipeline.methods import distill_config
from lfcc_pipeline.methods.kd import LogitKD
from lfcc_pipeline.models.factory import create_model, normalization
from lfcc_pipeline.training.loop import FitSpec, fit, lr_factor

CPU = torch.device("cpu")


def _setup(tmp_path, epochs, ckpt_every=3):
    ds = load_dataset(DataSpec("fashion-mini", None), 0.1, 0)
    train = ds.train.subset(torch.arange(256).numpy())
    val = ds.val.subset(torch.arange(64).numpy())
    torch.manual_seed(0)
    teacher, _ = create_model("test_convnext", 10, 32)
    student, _ = create_model("test_resnet", 10, 32)
    distiller = LogitKD(student, teacher, distill_config(method="kd"))
    spec = FitSpec(epochs, 1e-3, OptimConfig(), "fp32", ckpt_every, 0, tmp_path / "last.pt", "fp", desc="t")
    args = (
        Batches(train, 32, True, 32),
        Batches(val, 64, False, 32),
        32,
        normalization(student),
        normalization(teacher),
    )
    return distiller, args, spec


def test_resume_mid_epoch_reproduces_final_weights(tmp_path, monkeypatch):
    d_full, args, spec = _setup(tmp_path / "a", epochs=2)
    fit(d_full, *args, CPU, spec)

    d_part, args, spec = _setup(tmp_path / "b", epochs=2)
    calls = {"n": 0}
    real_step = torch.optim.AdamW.step

    def crash_after_five(self, *a, **k):  # simulate a kill in the middle of epoch 1
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", crash_after_five)
    with contextlib.suppress(KeyboardInterrupt):
        fit(d_part, *args, CPU, spec)
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    d_resumed, args, spec = _setup(tmp_path / "b", epochs=2)
    result = fit(d_resumed, *args, CPU, spec)
    assert result.resumed_from_step == 3  # the checkpoint written every 3 steps
    for (n, a), (_, b) in zip(d_full.student.state_dict().items(), d_resumed.student.state_dict().items(), strict=True):
        assert torch.equal(a, b), n


def test_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    d, args, spec = _setup(tmp_path, epochs=1)
    fit(d, *args, CPU, spec)
    d2, args, spec = _setup(tmp_path, epochs=1)
    spec.fingerprint = "other"
    assert fit(d2, *args, CPU, spec).resumed_from_step is None


def test_nan_loss_stops_with_the_step_and_a_hint(tmp_path):
    d, args, spec = _setup(tmp_path, epochs=1)
    spec.lr = 1e6  # diverges quickly
    spec.optim = OptimConfig(warmup_epochs=0)
    try:
        fit(d, *args, CPU, spec)
    except StageFailed as e:
        assert "NaN/Inf at step" in e.line() and "--grad-clip" in e.line()
    else:
        raise AssertionError("a diverging run must stop")


def test_lr_schedule_warms_up_then_decays():
    f = [lr_factor(s, 100, 10) for s in range(100)]
    assert f[0] == 0.1 and abs(f[9] - 1.0) < 1e-9
    assert all(a >= b for a, b in zip(f[10:], f[11:], strict=False)) and f[-1] < 0.01


def test_nan_weights_stop_training_before_a_checkpoint(tmp_path):
    from lfcc_pipeline.training.loop import _raise_if_weights_nonfinite

    d, _, spec = _setup(tmp_path, epochs=1)
    _raise_if_weights_nonfinite(d, 3, spec)  # finite weights pass
    with torch.no_grad():
        next(d.student.parameters()).view(-1)[0] = float("nan")
    try:
        _raise_if_weights_nonfinite(d, 3, spec)
    except StageFailed as e:
        assert "weights became NaN/Inf by step 3" in e.line() and "--grad-clip" in e.line()
    else:
        raise AssertionError("NaN weights must stop training")


def test_loop_tells_the_method_its_progress_before_each_step(tmp_path, monkeypatch):
    d, args, spec = _setup(tmp_path, epochs=2)  # 256 images, batch 32: 8 steps an epoch
    seen: list[float] = []
    monkeypatch.setattr(type(d), "set_progress", lambda self, epochs: seen.append(epochs), raising=False)
    fit(d, *args, CPU, spec)
    assert seen == [s / 8 for s in range(16)]
