"""The papers' protocols as presets: what each sets, and that options given explicitly win."""

import pytest

from lfcc_pipeline.core.config import ModelsConfig, RunConfig
from lfcc_pipeline.core.errors import ConfigError, StageFailed
from lfcc_pipeline.presets import apply_preset
from lfcc_pipeline.stages.export import _check


def _cfg(student: str) -> RunConfig:
    return RunConfig(models=ModelsConfig("deit_s", student))


def test_cifar100_preset_for_a_cnn_student_is_ofa_kds_sgd_recipe():
    cfg = apply_preset(_cfg("resnet18"), "cifar100")
    o = cfg.train.optim
    assert (cfg.models.img_size, cfg.train.epochs, cfg.train.batch_size) == (224, 300, 128)
    assert (o.optimizer, o.lr, o.weight_decay, o.warmup_epochs, o.schedule) == ("sgd", 0.05, 2e-3, 3, "cosine")
    assert cfg.models.pretrained is True and cfg.train.teacher_epochs == 30 and o.label_smoothing == 0.1


def test_cifar100_preset_for_a_vit_student_uses_adamw_and_clipping():
    o = apply_preset(_cfg("deit_t"), "cifar100").train.optim
    assert (o.optimizer, o.lr, o.weight_decay, o.warmup_epochs, o.grad_clip) == ("adamw", 5e-4, 0.05, 20, 5.0)


def test_imagenet_preset_scales_the_per_process_batch_with_world_size(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    cfg = apply_preset(_cfg("resnet18"), "imagenet")
    o = cfg.train.optim
    assert (cfg.train.epochs, cfg.train.batch_size, o.optimizer, o.lr) == (100, 512, "sgd", 0.1)
    assert (o.schedule, o.step_epochs, cfg.train.teacher_epochs) == ("step", 30, 0)


def test_explicit_options_win_over_the_preset():
    cfg = apply_preset(_cfg("resnet18"), "cifar100", keep=frozenset({"epochs", "img_size"}))
    assert cfg.train.epochs == _cfg("resnet18").train.epochs and cfg.models.img_size is None
    assert cfg.train.optim.optimizer == "sgd"  # the rest of the recipe still applies


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown --preset"):
        apply_preset(_cfg("resnet18"), "cifar10")


def _parity(max_abs_diff: float, agreement: float) -> dict:
    return {"max_abs_diff": max_abs_diff, "max_abs_logit": 10.0, "top1_agreement": agreement}


def test_export_parity_gate():
    cfg = RunConfig()  # tolerance: 1e-3 + 1e-3 * max |logit|, at least 99% top-1 agreement
    ok = _parity(0.005, 1.0)
    _check("student", ok, cfg)
    assert ok["ok"] and ok["tolerance"] == pytest.approx(0.011)
    for bad in (_parity(0.02, 1.0), _parity(0.0, 0.98)):
        with pytest.raises(StageFailed, match="ONNX disagrees with PyTorch") as e:
            _check("student", bad, cfg)
        assert "--exporter" in e.value.line() and bad["ok"] is False
