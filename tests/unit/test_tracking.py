"""TensorBoard curves of the training loop, read back with TensorBoard's own EventAccumulator: one value
per logging step, none repeated or missing after an interrupted and resumed run."""

import contextlib
import logging

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lfcc_pipeline.tracking.base import Guarded, Tracker
from lfcc_pipeline.tracking.tensorboard import open_tensorboard
from lfcc_pipeline.training.loop import fit
from tests.unit.test_training_resume import CPU, _setup


def _scalars(logdir) -> dict[str, list[int]]:
    ea = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    ea.Reload()
    return {tag: [e.step for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def _tracked(tmp_path, run: str, epochs: int, log_every: int):
    d, args, spec = _setup(tmp_path / run, epochs=epochs)  # 8 steps per epoch, a checkpoint every 3
    spec.log_every = log_every
    spec.open_tracker = lambda purge: open_tensorboard(tmp_path / run / "tb", purge)
    return d, args, spec


def test_every_loss_part_lr_speed_and_val_top1_per_logging_step(tmp_path):
    d, args, spec = _tracked(tmp_path, "a", epochs=2, log_every=3)
    fit(d, *args, CPU, spec)
    steps = _scalars(tmp_path / "a" / "tb")
    every = [3, 6, 8, 9, 12, 15, 16]  # every 3rd step and each epoch's last
    for tag in ("train/loss", "train/loss_ce", "train/loss_kd", "train/lr", "perf/images_per_s",
                "perf/data_wait_fraction"):  # fmt: skip
        assert steps[tag] == every, tag
    assert steps["val/top1"] == steps["train/epoch_loss"] == [8, 16]
    ea = EventAccumulator(str(tmp_path / "a" / "tb"))
    ea.Reload()
    assert all(0 <= e.value <= 1 for e in ea.Scalars("perf/data_wait_fraction"))
    assert all(e.value > 0 for e in ea.Scalars("perf/images_per_s"))
    assert [round(e.value, 4) for e in ea.Scalars("val/top1")] == [round(h["val_top1"], 4) for h in
                                                                   d_history(spec)]  # fmt: skip


def d_history(spec):
    return torch.load(spec.ckpt_path, weights_only=True)["history"]


def test_interrupted_then_resumed_run_has_each_step_once(tmp_path, monkeypatch):
    d, args, spec = _tracked(tmp_path, "b", epochs=2, log_every=1)
    calls = {"n": 0}
    real_step = torch.optim.AdamW.step

    def crash_after_five(self, *a, **k):  # steps 4 and 5 are logged after the step-3 checkpoint, then "kill"
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", crash_after_five)
    with contextlib.suppress(KeyboardInterrupt):
        fit(d, *args, CPU, spec)
    assert _scalars(tmp_path / "b" / "tb")["train/loss"] == [1, 2, 3, 4, 5]  # on disk before the resume
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    d, args, spec = _tracked(tmp_path, "b", epochs=2, log_every=1)
    assert fit(d, *args, CPU, spec).resumed_from_step == 3
    steps = _scalars(tmp_path / "b" / "tb")
    assert steps["train/loss"] == list(range(1, 17))  # 4 and 5 once (the resumed run's), nothing missing
    assert steps["val/top1"] == [8, 16]


def test_a_fresh_start_replaces_the_old_curves(tmp_path):
    d, args, spec = _tracked(tmp_path, "c", epochs=1, log_every=4)
    fit(d, *args, CPU, spec)
    d, args, spec = _tracked(tmp_path, "c", epochs=1, log_every=2)
    spec.fingerprint = "other settings"  # the checkpoint is not resumed: training starts over
    fit(d, *args, CPU, spec)
    assert _scalars(tmp_path / "c" / "tb")["train/loss"] == [2, 4, 6, 8]


class _Broken(Tracker):
    def scalars(self, values, step):
        raise OSError(28, "No space left on device")


def test_a_failing_tracker_is_one_warning_and_the_run_goes_on(tmp_path, caplog):
    d, args, spec = _setup(tmp_path, epochs=1)
    spec.open_tracker = lambda purge: Guarded(_Broken(), "TensorBoard logging to tb")
    spec.log_every = 2
    caplog.set_level(logging.WARNING, logger="lfcc_pipeline")
    assert len(fit(d, *args, CPU, spec).history) == 1
    warned = [r.getMessage() for r in caplog.records]
    assert warned == ["warning: TensorBoard logging to tb failed (OSError: [Errno 28] No space left on device); "
                      "the run continues without it"]  # fmt: skip


def test_no_tensorboard_turns_it_off(tmp_path):
    import dataclasses

    from lfcc_pipeline.core.config import RunConfig, TrackingConfig
    from lfcc_pipeline.tracking.open import stage_tracker_opener
    from lfcc_pipeline.tracking.tensorboard import log_every

    cfg = RunConfig()
    assert stage_tracker_opener(cfg, tmp_path, "distill") is not None and log_every(cfg) == 20  # on by default
    cfg = dataclasses.replace(cfg, tracking=TrackingConfig(tensorboard=False, log_every=5))
    assert stage_tracker_opener(cfg, tmp_path, "distill") is None and log_every(cfg) == 5


def test_mlflow_without_the_extra_is_one_warning(tmp_path, caplog):
    import importlib.util

    import pytest

    from lfcc_pipeline.core.config import RunConfig, TrackingConfig
    from lfcc_pipeline.tracking.mlflow import open_mlflow

    if importlib.util.find_spec("mlflow") is not None:
        pytest.skip("mlflow is installed here (tests/unit/test_mlflow.py covers it)")
    cfg = RunConfig(tracking=TrackingConfig(mlflow="default"))
    caplog.set_level(logging.WARNING, logger="lfcc_pipeline")
    tracker = open_mlflow(cfg, tmp_path / "run", "distill")
    tracker.scalars({"train/loss": 1.0}, 1)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "pip install 'lfcc-pipeline[mlflow]'" in said[0], said
