"""Where the student starts: --student-weights (head re-initialised), --student-pretrained, random."""

import pytest
import torch

from lfcc_pipeline.core.config import ModelsConfig, OptimConfig, RunConfig, TrainConfig
from lfcc_pipeline.core.errors import ModelError
from lfcc_pipeline.models import weights as weights_mod
from lfcc_pipeline.models.factory import create_model
from lfcc_pipeline.models.weights import initial_model
from lfcc_pipeline.stages import distill


def test_torch_weights_of_another_class_count_load_with_a_new_head(tmp_path):
    torch.manual_seed(1)
    source, _ = create_model("test_resnet", 7, 32)
    path = tmp_path / "resnet7.pt"
    torch.save({"state_dict": source.state_dict()}, path)  # a weights_only-loadable training checkpoint
    model, recipe, where = initial_model("test_resnet", 10, 32, weights=path, flags=distill.STUDENT_FLAGS)
    assert where == f"weights:{path}" and recipe.num_classes == 10
    own, theirs = model.state_dict(), source.state_dict()
    head = [k for k in own if own[k].shape != theirs[k].shape]
    assert head and all(k.startswith("fc.") for k in head)
    assert all(torch.equal(own[k], theirs[k]) for k in own if k not in head)


def _cfg(**models) -> RunConfig:
    cfg = RunConfig(models=ModelsConfig(teacher="test_vit", student="test_resnet", img_size=32),
                    train=TrainConfig(optim=OptimConfig(lr=2e-3)))  # fmt: skip
    for k, v in models.items():  # until the lead adds the fields
        object.__setattr__(cfg.models if k.startswith("student_") and k != "student_lr" else cfg.train.optim, k, v)
    return cfg


def test_student_pretrained_offline_is_one_line_naming_the_ways_out(monkeypatch):
    monkeypatch.setattr(weights_mod, "try_pretrained", lambda *a: None)  # hub unreachable, nothing cached
    with pytest.raises(ModelError) as e:
        distill._student(_cfg(student_pretrained=True), 10, 32)
    assert e.value.line() == (
        "pretrained weights for test_resnet cannot be loaded (hub unreachable, not cached, or none exist); "
        "pass --student-weights PATH, or drop --student-pretrained to train from scratch"
    )


def test_student_pretrained_fine_tunes_at_a_tenth_of_the_lr_unless_student_lr_is_set(monkeypatch):
    monkeypatch.setattr(weights_mod, "try_pretrained", lambda name, n, size: create_model(name, n, size))
    _, _, source, lr = distill._student(_cfg(student_pretrained=True), 10, 32)
    assert (source, lr) == ("timm-pretrained", 2e-4)
    _, _, _, lr = distill._student(_cfg(student_pretrained=True, student_lr=5e-4), 10, 32)
    assert lr == 5e-4
    _, _, source, lr = distill._student(_cfg(), 10, 32)  # the default: random weights, the base lr
    assert (source, lr) == ("scratch", 2e-3)


def test_fingerprint_changes_only_when_a_start_is_set(tmp_path):
    assert distill._start_slice(_cfg()) == {}
    w = tmp_path / "w.safetensors"
    w.write_bytes(b"x")
    assert set(distill._start_slice(_cfg(student_weights=w, student_pretrained=True))) == {
        "student_weights", "student_pretrained"
    }  # fmt: skip
