"""LFCC's design options (the ablation study's knobs): each changes what it says, and only that."""

from __future__ import annotations

import math

import pytest
import torch

from lfcc_pipeline.methods import distill_config
from lfcc_pipeline.methods.lfcc import LFCC, LFCCOptions, NegativeQueue, Projector, info_nce
from lfcc_pipeline.methods.low_pass import cells, low_pass
from lfcc_pipeline.models.factory import create_model


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    t, _ = create_model("test_vit", 10, 32)
    s, _ = create_model("test_resnet", 10, 32)
    return t, s


def lfcc(pair, **opts) -> LFCC:
    t, s = pair
    torch.manual_seed(0)
    return LFCC(s, t, distill_config(method="lfcc", **{f"lfcc_{k}": v for k, v in opts.items()})).train()


def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)


def test_gauss_filter_keeps_constants_and_removes_fine_detail():
    const = torch.full((1, 2, 8, 8), 3.0)
    design = ("gauss", (1, 5), 8)
    assert low_pass(const, design).shape == (1, 2 * cells(design))
    assert torch.allclose(low_pass(const, design), torch.full((1, 2 * 128), 3.0), atol=1e-5)  # borders too
    board = ((torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2 - 1).float().expand(1, 1, 8, 8)
    out = low_pass(board, design).view(2, 64)
    assert torch.allclose(out[0], board.flatten())  # size 1 at full grid: the map itself
    assert out[1].abs().max() < 0.1 * out[0].abs().max()  # size 5: the checkerboard is gone


def test_pool_design_is_the_pyramid_of_scales():
    assert LFCCOptions().design() == ("pool", (1, 2, 4))
    assert LFCCOptions(filter="gauss", blur_sizes=(1, 3), blur_grid=2).design() == ("gauss", (1, 3), 2)
    assert cells(("pool", (1, 2, 4))) == 21 and cells(("gauss", (1, 3), 2)) == 8


@pytest.mark.parametrize(("depth", "linears"), [(1, 1), (2, 2), (3, 3)])
def test_projector_depth(depth, linears):
    p = Projector(40, 16, hidden=24, depth=depth)
    assert sum(isinstance(m, torch.nn.Linear) for m in p) == linears
    assert p(torch.randn(4, 40)).shape == (4, 16)
    if depth > 1:
        assert p[0].out_features == 24


def test_gauss_filter_trains_end_to_end(pair):
    d = lfcc(pair, filter="gauss", blur_sizes=(1, 3), blur_grid=2)
    x, y = batch()
    d(x, x, y)[1]["loss_lfcc"].backward()
    assert d.student_proj[0][0].in_features % cells(d.design) == 0


def test_teacher_projector_is_frozen_by_default_and_trains_on_request(pair):
    x, y = batch()
    trained = lfcc(pair, train_teacher_proj=True)
    trained(x, x, y)[1]["loss_lfcc"].backward()
    assert all(p.grad is not None for p in trained.teacher_proj.parameters())
    d = lfcc(pair)
    x, y = batch()
    d(x, x, y)[1]["loss_lfcc"].backward()
    assert all(p.grad is None and not p.requires_grad for p in d.teacher_proj.parameters())
    assert not any(p is q for p in d.trainable_parameters() for q in d.teacher_proj.parameters())
    assert all(p.grad is not None for p in d.student_proj.parameters())


def test_temperature_is_fixed_by_default_and_learnable_on_request(pair):
    x, y = batch()
    fixed = lfcc(pair)
    assert not fixed.log_inv_tau.requires_grad and math.isclose(fixed.temperature().item(), 0.1, rel_tol=1e-6)
    learn = lfcc(pair, learn_temperature=True, temperature=0.2)
    learn(x, x, y)[1]["loss_lfcc"].backward()
    assert learn.log_inv_tau.grad is not None and learn.log_inv_tau.grad.abs() > 0
    with torch.no_grad():
        learn.log_inv_tau.fill_(10.0)
    assert math.isclose(learn.temperature().item(), 0.01, rel_tol=1e-5)  # capped


def test_queue_is_a_fifo_of_the_latest_rows():
    q = NegativeQueue(6, 2)
    for i in range(3):
        q.push(torch.full((4, 2), float(i)))
    assert q.valid.all() and q.head.item() == 0
    assert sorted(q.items[:, 0].tolist()) == [1.0, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_info_nce_queue_adds_negatives_and_masked_rows_do_nothing():
    g = torch.Generator().manual_seed(3)
    zs, zt, neg = (torch.nn.functional.normalize(torch.randn(n, 8, generator=g), dim=1) for n in (4, 4, 5))
    base = info_nce(zs, zt, 0.1)
    assert torch.allclose(info_nce(zs, zt, 0.1, neg, torch.zeros(5, dtype=torch.bool)), base)
    assert info_nce(zs, zt, 0.1, neg, torch.ones(5, dtype=torch.bool)) > base


def test_queue_fills_during_training_only(pair):
    d = lfcc(pair, queue=16)
    x, y = batch()
    first = d(x, x, y)[1]["loss_lfcc"]
    assert d.queues[0].valid.sum().item() == 8
    d.eval()
    d(x, x, y)
    assert d.queues[0].valid.sum().item() == 8
    d.train()
    second = d(x, x, y)[1]["loss_lfcc"]
    assert second > first  # the same batch now also meets 8 queued negatives (its own earlier embeddings)
    assert "queues.0.items" in d.state_dict()  # resumes keep the queue


def test_warmup_ramps_the_contrastive_weight(pair):
    d = lfcc(pair, warmup_epochs=2.0)
    x, y = batch()
    full = lfcc(pair)(x, x, y)[1]["loss_lfcc"]
    for done, factor in [(0.0, 0.0), (1.0, 0.5), (3.0, 1.0)]:
        d.set_progress(done)
        assert torch.allclose(d(x, x, y)[1]["loss_lfcc"], factor * full, rtol=1e-4, atol=1e-6)


def test_queue_trains_over_several_steps(pair):
    # The queue is read (saved for backward) and then pushed to in the same step: backward must still work.
    d = lfcc(pair, queue=12)
    x, y = batch()
    for _ in range(3):
        d(x, x, y)[1]["loss_lfcc"].backward()
    assert d.queues[0].valid.all()
    assert d.student_proj[0][0].weight.grad is not None


def test_option_field_finds_the_owning_method_and_field():
    from lfcc_pipeline.methods import option_field

    method, field = option_field("lfcc_num_stages")
    assert method is LFCC and field.name == "num_stages" and "tuple" not in str(field.type)
    assert "tuple" in str(option_field("lfcc_scales")[1].type)
    assert option_field("lfcc_nope") is None and option_field("kd_weight") is None  # shared, not a method's
    with pytest.raises(TypeError, match="lfcc_nope"):
        distill_config(lfcc_nope=1)
