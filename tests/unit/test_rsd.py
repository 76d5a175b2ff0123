"""RSD (ICCV 2025): the loss against an independent reference, and the method on a ViT -> CNN pair."""

import numpy as np
import pytest
import torch

from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.methods import METHODS, distill_config
from lfcc_pipeline.methods.rsd import RSD, rsd_loss
from lfcc_pipeline.models.factory import create_model


def _reference(zs: np.ndarray, zt: np.ndarray, kappa: float) -> float:
    """The loss written out element by element (float64)."""
    b, d = zs.shape
    s = (zs - zs.mean(0)) / (zs.std(0) + 1e-5)
    t = (zt - zt.mean(0)) / (zt.std(0) + 1e-5)
    total = 0.0
    for i in range(zt.shape[1]):
        for j in range(d):
            c = sum(t[k, i] * s[k, j] for k in range(b)) / b
            total += (c - 1) ** 2 if i == j else kappa * c**2
    return total


@pytest.mark.parametrize("kappa", [0.0, 0.01, 1.0])
def test_rsd_loss_matches_the_reference(kappa):
    rng = np.random.default_rng(0)
    zs, zt = rng.standard_normal((12, 6)), rng.standard_normal((12, 6)) * 3 + 1
    got = rsd_loss(torch.from_numpy(zs).float(), torch.from_numpy(zt).float(), kappa).item()
    assert got == pytest.approx(_reference(zs, zt, kappa), rel=1e-4)


def test_rsd_loss_is_scale_free_and_zero_on_the_diagonal_for_equal_features():
    z = torch.randn(64, 4)
    assert rsd_loss(z, 5 * z + 2, 0.0).item() == pytest.approx(0.0, abs=1e-4)  # standardised: only correlation counts
    assert rsd_loss(z, z, 1.0).item() > rsd_loss(z, z, 0.01).item()  # off-diagonal terms weigh in with kappa


def test_rsd_trains_student_and_adapter_only():
    t, _ = create_model("test_vit", 10, 32)
    s, _ = create_model("test_resnet", 10, 32)
    d = RSD(s, t, distill_config(method="rsd")).train()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    logits, losses = d(x, x, y)
    assert logits.shape == (4, 10) and set(losses) == {"loss_ce", "loss_rsd"}
    sum(losses.values()).backward()
    assert all(p.grad is None for p in t.parameters())
    assert d.adapter[0].weight.grad is not None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in s.layer1.parameters())
    assert {k.split(".")[0] for k in d.state_dict()} == {"student", "adapter"}
    assert d.adapter[-1].out_features == t.num_features and d.adapter[0].out_features == 2 * s.num_features
    with_kd = RSD(s, t, distill_config(method="rsd", rsd_logit_weight=0.5)).train()
    assert "loss_kd" in with_kd(x, x, y)[1]


def test_rsd_is_a_method_with_its_options():
    assert "rsd" in METHODS and METHODS["rsd"] is RSD
    assert RSD.fingerprint(distill_config(method="rsd", rsd_kappa=0.05))["rsd"]["kappa"] == 0.05
    for bad, flag in [({"rsd_kappa": 1.5}, "--rsd-kappa"), ({"rsd_gamma": 0}, "--rsd-gamma"),
                      ({"rsd_weight": -1.0}, "--rsd-weight")]:  # fmt: skip
        with pytest.raises(ConfigError, match=flag):
            RunConfig(distill=distill_config(method="rsd", **bad)).validate()
