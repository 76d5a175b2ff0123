"""Behaviour of the distillation losses: each test can fail if the maths is wrong."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lfcc_pipeline.methods import METHODS, distill_config, get_method
from lfcc_pipeline.methods.base import kd_loss
from lfcc_pipeline.methods.lfcc import LFCC, info_nce, stage_pairs
from lfcc_pipeline.methods.low_pass import low_pass
from lfcc_pipeline.methods.ofa import OFA, ofa_loss
from lfcc_pipeline.models.factory import create_model

GOLDEN = Path(__file__).resolve().parent / "golden"


# -- low-pass pyramid ---------------------------------------------------------------------------


def test_pyramid_passes_a_constant_map_unchanged():
    x = torch.full((2, 3, 8, 8), 0.7)
    out = low_pass(x, ("pool", (1, 2, 4)))
    assert out.shape == (2, 3 * (1 + 4 + 16))
    assert torch.allclose(out, torch.full_like(out, 0.7))


def test_pyramid_removes_a_checkerboard():
    i, j = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    board = ((i + j) % 2 * 2 - 1).float().expand(2, 3, 8, 8)  # the highest spatial frequency
    assert board.abs().mean() == 1
    assert low_pass(board, ("pool", (1, 2, 4))).abs().max() < 1e-6


def test_pyramid_keeps_low_frequencies():
    ramp = torch.linspace(-1, 1, 8).view(1, 1, 1, 8).expand(1, 1, 8, 8)  # a slow horizontal gradient
    out = low_pass(ramp, ("pool", (2,)))
    assert out[0, 0] < 0 < out[0, 1]  # left half negative, right half positive survives


# -- InfoNCE --------------------------------------------------------------------------------------


def test_info_nce_is_minimal_when_embeddings_coincide_and_are_orthogonal_to_others():
    z = torch.eye(8, 16)  # every sample its own orthogonal direction, student == teacher
    best = info_nce(z, z, 0.1)
    expected = math.log(1 + 7 * math.exp(-1 / 0.1))  # positive cosine 1, negatives cosine 0
    assert abs(best.item() - expected) < 1e-5
    g = torch.Generator().manual_seed(0)
    for _ in range(20):  # any other configuration scores worse
        zs = F.normalize(z + 0.3 * torch.randn(z.shape, generator=g), dim=1)
        zt = F.normalize(z + 0.3 * torch.randn(z.shape, generator=g), dim=1)
        assert info_nce(zs, zt, 0.1) > best
    shuffled = z[torch.roll(torch.arange(8), 1)]  # teacher embedding of another sample
    assert info_nce(z, shuffled, 0.1) > 10 * best


def test_info_nce_is_invariant_to_a_common_permutation():
    g = torch.Generator().manual_seed(1)
    zs = F.normalize(torch.randn(12, 8, generator=g), dim=1)
    zt = F.normalize(torch.randn(12, 8, generator=g), dim=1)
    perm = torch.randperm(12, generator=g)
    assert torch.allclose(info_nce(zs, zt, 0.2), info_nce(zs[perm], zt[perm], 0.2), atol=1e-6)
    assert not torch.allclose(info_nce(zs, zt, 0.2), info_nce(zs, zt[perm], 0.2), atol=1e-3)


def test_info_nce_is_symmetric_in_its_arguments():
    g = torch.Generator().manual_seed(2)
    zs, zt = (F.normalize(torch.randn(6, 4, generator=g), dim=1) for _ in range(2))
    assert torch.allclose(info_nce(zs, zt, 0.1), info_nce(zt, zs, 0.1))


# -- KD and OFA -------------------------------------------------------------------------------


def test_kd_loss_is_zero_for_identical_logits_and_positive_otherwise():
    s = torch.randn(4, 10)
    assert kd_loss(s, s, 4.0).abs() < 1e-6
    assert kd_loss(s, s + torch.randn(4, 10), 4.0) > 0


def test_ofa_with_eps_one_is_soft_target_cross_entropy():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    y = torch.randint(0, 7, (5,), generator=g)
    soft_ce = -(F.softmax(t, 1) * F.log_softmax(s, 1)).sum(1).mean()
    assert torch.allclose(ofa_loss(s, t, y, 1.0, 1.0), soft_ce, atol=1e-6)


def test_ofa_eps_enhances_the_target_class():
    s = torch.zeros(1, 3, requires_grad=True)
    t = torch.tensor([[2.0, 1.0, 0.0]])
    y = torch.tensor([0])
    grads = []
    for eps in (1.0, 1.5):
        (g,) = torch.autograd.grad(ofa_loss(s, t, y, eps, 1.0), s)
        grads.append(g[0, 0].item())  # negative: pushes the target logit up
    assert grads[1] < grads[0] < 0  # a larger eps pushes the target class harder


# -- golden values --------------------------------------------------------------------------------


def test_golden_values():
    from tests.unit.golden.make_golden import compute

    with np.load(GOLDEN / "loss_inputs.npz") as z:
        inputs = {k: z[k] for k in z.files}
    expected = json.loads((GOLDEN / "loss_values.json").read_text())
    got = compute(inputs)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


# -- whole methods --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "teacher, student",
    [("test_vit", "test_resnet"), ("test_resnet", "test_vit"), ("resmlp_12_224", "test_resnet"),
     ("test_convnext", "test_efficientnet")],
)  # fmt: skip
@pytest.mark.parametrize("method", ["lfcc", "ofa"])
def test_heterogeneous_pairs_train(teacher, student, method):
    size = 32
    t, _ = create_model(teacher, 10, size)
    s, _ = create_model(student, 10, size)
    d = METHODS[method](s, t, distill_config(method=method))
    x, y = torch.randn(4, 3, size, size), torch.randint(0, 10, (4,))
    logits, losses = d(x, x, y)
    assert logits.shape == (4, 10)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in t.parameters())  # the teacher never trains
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in s.parameters())


def test_lfcc_steps_on_a_fixed_batch_reduce_its_loss():
    torch.manual_seed(0)
    t, _ = create_model("test_vit", 10, 32)
    s, _ = create_model("test_resnet", 10, 32)
    d = LFCC(s, t, distill_config(method="lfcc")).train()
    opt = torch.optim.AdamW([p for p in d.parameters() if p.requires_grad], lr=1e-3)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    history = []
    for _ in range(8):
        loss = d(x, x, y)[1]["loss_lfcc"]
        history.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert history[-1] < 0.8 * history[0]


def test_auto_stage_pairs_and_override():
    t, _ = create_model("test_vit", 10, 32)  # 6 blocks
    s, _ = create_model("test_resnet", 10, 32)  # stem + 4 stages
    assert stage_pairs(t, s, distill_config()) == [(1, 2), (3, 3), (5, 4)]
    assert stage_pairs(t, s, distill_config(lfcc_stages=((0, 1), (-1, -1)))) == [(0, 1), (5, 4)]


def test_training_only_modules_never_reach_the_student():
    t, _ = create_model("test_vit", 10, 32)
    s, _ = create_model("test_resnet", 10, 32)
    student_keys = set(s.state_dict())
    for cls in (LFCC, OFA):
        d = cls(s, t, distill_config())
        extra = set(d.state_dict()) - {f"student.{k}" for k in student_keys}
        assert extra and all(k.startswith(("student_proj", "teacher_proj", "branches", "log_inv_tau")) for k in extra)
        assert not any(k.startswith("teacher.") for k in d.state_dict())  # teacher weights stay out of checkpoints


def test_every_method_is_registered():
    assert set(METHODS) == {"none", "kd", "ofa", "lfcc", "cakd", "tas", "rsd"}
    assert get_method("lfcc") is LFCC
