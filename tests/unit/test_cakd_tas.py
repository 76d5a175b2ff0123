"""Behaviour of the cakd and tas methods: each test can fail if the maths or the plumbing is wrong."""

import copy

import pytest
import torch
import torch.nn.functional as F

from lfcc_pipeline.core.config import DistillConfig
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.methods import METHODS, distill_config
from lfcc_pipeline.methods.cakd import (
    CAKD,
    GroupLinear,
    align_grid,
    partial_replace,
    pca_loss,
    random_views,
    relation,
    reverse_grad,
)
from lfcc_pipeline.methods.tas import TAS, split_points
from lfcc_pipeline.models.factory import create_model

PAIRS = [
    ("test_vit", "test_resnet"),  # ViT -> CNN
    ("test_resnet", "test_vit"),  # CNN -> ViT
    ("resmlp_12_224", "test_resnet"),  # MLP -> CNN
    ("test_convnext", "test_efficientnet"),  # CNN -> CNN
    ("test_efficientnet", "resmlp_12_224"),  # CNN -> MLP
]


def models(teacher: str, student: str, size: int = 32):
    torch.manual_seed(0)
    return create_model(teacher, 10, size)[0], create_model(student, 10, size)[0]


# -- CAKD pieces -------------------------------------------------------------------------------


def test_pca_loss_is_zero_only_when_the_spaces_agree():
    g = torch.Generator().manual_seed(0)
    qkv = tuple(torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    assert pca_loss(qkv, qkv) == 0
    other = tuple(x + torch.randn(x.shape, generator=g) for x in qkv)
    assert pca_loss(other, qkv) > 0
    # the value relation counts too: same Q, K but other V
    assert pca_loss((qkv[0], qkv[1], other[2]), qkv) > 0


def test_relation_rows_are_distributions_and_use_the_scaled_dot_product():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 4, 6, generator=g), torch.randn(2, 5, 6, generator=g)
    r = relation(q, k)
    assert r.shape == (2, 4, 5) and torch.allclose(r.sum(-1), torch.ones(2, 4))
    assert torch.allclose(r, F.softmax(q @ k.transpose(1, 2) / 6**0.5, dim=-1))


def test_relation_can_leave_out_each_tokens_relation_to_itself():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 5, 64, generator=g)
    assert relation(x, x).diagonal(dim1=-2, dim2=-1).mean() > 0.9  # self-affinity swamps the rows
    r = relation(x, x, exclude_self=True)
    assert torch.all(r.diagonal(dim1=-2, dim2=-1) == 0) and torch.allclose(r.sum(-1), torch.ones(2, 3, 5))
    one = torch.randn(1, 1, 1, 8)
    assert torch.equal(relation(one, one, exclude_self=True), torch.ones(1, 1, 1, 1))  # a single token: no NaN


def test_partial_replace_swaps_about_the_requested_share_of_entries():
    s, t = torch.zeros(20000), torch.ones(20000)
    assert torch.equal(partial_replace(s, t, 0.0), s)
    mixed = partial_replace(s, t, 0.3)
    assert 0.27 < mixed.mean() < 0.33  # a share of ~p entries comes from the teacher, the rest unchanged
    assert set(mixed.unique().tolist()) == {0.0, 1.0}


def test_partial_replace_passes_gradients_only_through_student_entries():
    s = torch.randn(1000, requires_grad=True)
    mixed = partial_replace(s, torch.zeros(1000), 0.5)
    mixed.sum().backward()
    kept = mixed.detach() == s.detach()
    assert torch.equal(s.grad, kept.float())


@pytest.mark.parametrize(
    "s_red, t_red, s_size, t_size",
    [(32, 16, 1, 2), (32, 16, 7, 14), (8, 16, 8, 4), (16, 16, 5, 5), (4, 14, 16, 4), (32, 16, 3, 5)],
)
def test_group_linear_reaches_the_teacher_grid(s_red, t_red, s_size, t_size):
    gl = GroupLinear(6, 10, s_red, t_red)
    out = gl(torch.randn(2, 6, s_size, s_size), (t_size, t_size))
    assert out.shape == (2, 10, t_size, t_size)


def test_group_linear_shares_one_linear_map_across_groups():
    gl = GroupLinear(4, 3, student_reduction=32, teacher_reduction=16)  # one position -> 2x2 tokens
    assert gl.up == 2 and gl.down == 1 and gl.proj.weight.shape == (3 * 4, 4, 1, 1)
    x = torch.randn(1, 4, 3, 3)
    x[:, :, 1, 1] = x[:, :, 0, 0]  # two positions with the same features give the same 2x2 token block
    out = gl(x, (6, 6))
    assert torch.allclose(out[:, :, 0:2, 0:2], out[:, :, 2:4, 2:4])


def test_align_grid_keeps_a_constant_map_constant():
    x = torch.full((1, 2, 7, 7), 3.0)
    for size in ((14, 14), (3, 3), (7, 7), (5, 9)):
        assert torch.allclose(align_grid(x, size), torch.full((1, 2, *size), 3.0))


def test_reverse_grad_flips_and_scales_the_gradient():
    x = torch.ones(3, requires_grad=True)
    (reverse_grad(x, 0.25) * 2).sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), -0.5))


def test_random_views_apply_the_same_transform_to_teacher_and_student_inputs():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 32, 32)
    v_s, v_t = random_views([x, 2 * x + 1])  # the teacher's normalisation is another affine map
    assert v_s.shape == x.shape
    assert torch.allclose(v_t, 2 * v_s + 1, atol=1e-5)
    assert not torch.allclose(v_s, x, atol=1e-3)


def test_cakd_reads_the_teachers_own_attention():
    t, s = models("test_vit", "test_resnet")
    d = CAKD(s, t, distill_config(method="cakd"))
    attn = d._t_attn[0]
    assert attn is t.blocks[-1].attn
    attn.fused_attn = False  # let the teacher compute its attention map where a hook can see it
    seen = []
    handle = attn.attn_drop.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.randn(3, 3, 32, 32)
    _, (q, k, v) = d.teacher_spaces(x)
    handle.remove()
    full = seen[-1]  # (B, heads, 1 + N, 1 + N), softmax over every token
    p = t.num_prefix_tokens
    patches = full[:, :, p:, p:] / full[:, :, p:, p:].sum(-1, keepdim=True)  # the same, over patch keys
    assert q.shape == (3, attn.num_heads, 4, attn.head_dim)
    assert torch.allclose(relation(q, k), patches, atol=1e-5)


def test_cakd_without_teacher_attention_uses_its_feature_map():
    t, s = models("test_resnet", "test_vit", size=64)
    d = CAKD(s, t, distill_config(method="cakd"))
    assert not d._t_attn
    t_map, (q, k, v) = d.teacher_spaces(torch.randn(2, 3, 64, 64))
    assert t_map.shape == (2, 96, 2, 2) and q.shape == (2, d.heads, 4, 96 // d.heads)
    assert torch.equal(q, k) and torch.equal(k, v)


def test_cakd_taps_choose_the_aligned_maps():
    t, s = models("test_resnet", "test_vit")
    d = CAKD(s, t, distill_config(method="cakd", cakd_taps=(-2, 2)))
    assert (d.t_tap, d.s_tap) == (3, 2)
    t_map, (q, _, _) = d.teacher_spaces(torch.randn(2, 3, 32, 32))
    assert t_map.shape == (2, 192, 2, 2) and q.shape[2] == 4  # layer3: 2 x 2 tokens where layer4 has 1
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    assert d.train()(x, x, y)[1]["loss_pca"] > 0


def test_cakd_multiview_adds_views_and_an_adversarial_loss():
    t, s = models("test_vit", "test_resnet")
    off = CAKD(s, t, distill_config(method="cakd")).train()
    on = CAKD(s, t, distill_config(method="cakd", cakd_multiview=True)).train()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    assert "loss_adv" not in off(x, x, y)[1] and off.disc is None
    logits, losses = on(x, x, y)
    assert logits.shape == (4, 10) and losses["loss_adv"] > 0
    losses["loss_adv"].backward()
    # the discriminator learns to separate; the projector gets the reversed (fooling) gradient
    assert all(p.grad is not None for p in on.disc.parameters())
    assert on.gl.proj.weight.grad is not None and on.gl.proj.weight.grad.abs().sum() > 0


# -- TAS pieces --------------------------------------------------------------------------------


def test_tas_default_split_points():
    t, s = models("test_vit", "test_resnet")  # 6 ViT blocks; ResNet stem + 4 stages
    assert split_points(t, s, distill_config()) == (3, 3)  # blocks.3 | layer3
    t2, _ = models("resmlp_12_224", "test_resnet")
    assert split_points(t2, s, distill_config()) == (8, 3)  # the last quarter of 12 blocks
    assert split_points(t, s, distill_config(tas_split=(-3, 2))) == (3, 2)


@pytest.mark.parametrize("teacher, student", PAIRS)
def test_tas_assistant_is_the_teachers_own_tail(teacher, student):
    """With the bridge replaced by the teacher's own tensor, the assistant reproduces the teacher."""
    t, s = models(teacher, student)
    d = TAS(s, t, distill_config(method="tas")).eval()
    d._assistant_input = lambda native, s_feat, x_t: native
    x = torch.randn(2, 3, 32, 32)
    feats = d.teacher_and_assistant(x, torch.zeros(1))
    both = t.forward_head(feats)
    assert both.shape == (4, 10)
    with torch.no_grad():
        reference = t(x)
    assert torch.allclose(both[:2], reference, atol=1e-5) and torch.allclose(both[2:], reference, atol=1e-5)


def test_tas_assistant_losses_train_the_students_early_stages_only():
    t, s = models("test_vit", "test_resnet")
    d = TAS(s, t, distill_config(method="tas")).train()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    d(x, x, y)[1]["loss_ta"].backward()
    for stage in (s.conv1, s.layer1, s.layer2, s.layer3):  # shared with the assistant
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in stage.parameters())
    assert all(p.grad is None for p in [*s.layer4.parameters(), *s.fc.parameters()])  # the student's own tail
    assert all(p.grad is None for p in t.parameters())
    assert d.bridge.embed.weight.grad.abs().sum() > 0


def test_tas_refuses_a_teacher_it_cannot_split():
    t, s = models("test_resnet", "test_vit")
    t.feature_info = copy.deepcopy(list(t.feature_info))
    t.feature_info[3]["module"] = "no_such_stage"
    with pytest.raises(ConfigError, match=r"tas cannot split the teacher of ResNet -> VisionTransformer.*--tas-split"):
        TAS(s, t, distill_config(method="tas"))


def test_tas_refuses_a_split_whose_tensor_it_cannot_read():
    t, s = models("test_resnet", "test_vit")
    d = TAS(s, t, distill_config(method="tas"))
    d.t_channels = 7  # no axis of the teacher's tensor at the split has this many channels
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,))
    with pytest.raises(ConfigError, match="tas cannot build the assistant"):
        d(x, x, y)
    assert not t.layer3._forward_hooks  # the hook is removed even when the forward fails


# -- whole methods -------------------------------------------------------------------------------


@pytest.mark.parametrize("teacher, student", PAIRS)
@pytest.mark.parametrize("method, options", [("cakd", {}), ("cakd", {"cakd_multiview": True}), ("tas", {})])
def test_pairs_train_and_leave_the_teacher_alone(method, options, teacher, student):
    t, s = models(teacher, student)
    d = METHODS[method](s, t, distill_config(method=method, **options)).train()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    logits, losses = d(x, x, y)
    assert logits.shape == (4, 10)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in t.parameters())
    assert not any(p.requires_grad for p in t.parameters())
    assert all(p.grad is not None for n, p in s.named_parameters() if not n.startswith(("fc.", "head")))
    assert not t.training


@pytest.mark.parametrize(
    "method, keys", [("cakd", ("loss_pca", "loss_gl")), ("tas", ("loss_ta", "loss_as", "loss_ts"))]
)
def test_steps_on_a_fixed_batch_reduce_the_distillation_losses(method, keys):
    t, s = models("test_vit", "test_resnet", size=64)
    d = METHODS[method](s, t, distill_config(method=method)).train()
    opt = torch.optim.AdamW([p for p in d.parameters() if p.requires_grad], lr=2e-3)
    torch.manual_seed(1)
    x, y = torch.randn(16, 3, 64, 64), torch.randint(0, 10, (16,))
    history = []
    for _ in range(12):
        losses = d(x, x, y)[1]
        history.append({k: losses[k].item() for k in keys})
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    for k in keys:
        assert history[-1][k] < 0.8 * history[0][k], (k, history[0][k], history[-1][k])


@pytest.mark.parametrize(
    "method, options, prefixes",
    [("cakd", {}, ("pca.", "gl.")), ("cakd", {"cakd_multiview": True}, ("pca.", "gl.", "disc.")),
     ("tas", {}, ("bridge.", "embed_t.", "embed_a.", "embed_s."))],
)  # fmt: skip
def test_training_only_modules_stay_out_of_the_student(method, options, prefixes):
    t, s = models("test_vit", "test_resnet")
    student_keys = set(s.state_dict())
    d = METHODS[method](s, t, distill_config(method=method, **options))
    extra = set(d.state_dict()) - {f"student.{k}" for k in student_keys}
    assert extra and all(k.startswith(prefixes) for k in extra)
    assert {k.split(".")[0] for k in extra} == {p.rstrip(".") for p in prefixes}
    assert set(s.state_dict()) == student_keys  # building the method added nothing to the student
    teacher_tensors = {id(p) for p in t.parameters()}
    assert not any(id(p) in teacher_tensors for p in d.parameters())  # the teacher's weights stay out


def test_options_are_listed_for_fingerprints():
    cfg = distill_config(method="tas", cakd_replace_prob=0.25, tas_dim=64, ofa_eps=1.2)
    assert CAKD.fingerprint(cfg)["cakd"]["replace_prob"] == 0.25
    tas = TAS.fingerprint(cfg)
    assert tas["tas"]["dim"] == 64 and tas["ofa"]["eps"] == 1.2  # TAS reads OFA's eps and temperature too
    assert "cakd" not in tas and set(tas) >= {"ce_weight", "kd_weight"}


@pytest.mark.parametrize(
    "change, flag",
    [({"cakd_replace_prob": 1.0}, "--cakd-replace-prob"), ({"cakd_replace_prob": -0.1}, "--cakd-replace-prob"),
     ({"cakd_gl_weight": -1.0}, "--cakd-gl-weight"), ({"tas_dim": 0}, "--tas-dim"),
     ({"tas_temperature": 0.0}, "--tas-temperature"), ({"tas_nce_weight": -0.5}, "--tas-nce-weight")],
)  # fmt: skip
def test_bad_option_values_are_config_errors(change, flag):
    from lfcc_pipeline.core.config import RunConfig

    with pytest.raises(ConfigError, match=flag):
        RunConfig(distill=distill_config(**change)).validate()


def test_cli_flags_reach_the_config():
    from lfcc_pipeline.cli import run_cmd
    from lfcc_pipeline.cli_options import config_from_options

    args = ["--cakd-pca-weight", "2", "--cakd-gl-weight", "0.5", "--cakd-replace-prob", "0.25", "--cakd-multiview",
            "--cakd-adv-weight", "0.3", "--tas-nce-weight", "0.7", "--tas-dim", "64", "--tas-temperature", "0.2",
            "--cakd-taps", "-2:3", "--tas-split", "2:-2"]  # fmt: skip
    d = config_from_options(run_cmd.make_context("run", args).params).distill
    c, t = CAKD.options_of(d), TAS.options_of(d)
    assert (c.pca_weight, c.gl_weight, c.replace_prob, c.multiview, c.adv_weight) == (2.0, 0.5, 0.25, True, 0.3)
    assert c.taps == (-2, 3)
    assert (t.nce_weight, t.dim, t.temperature, t.split) == (0.7, 64, 0.2, (2, -2))
    defaults = config_from_options(run_cmd.make_context("run", []).params).distill
    for method in METHODS.values():  # the CLI's defaults are the library's
        assert method.fingerprint(defaults) == method.fingerprint(DistillConfig()), method.name


# Swin and MLP-Mixer teachers (the registry's swin_t and mixer_b16, randomly initialised at 64 px)
LARGE_PAIRS = [("swin_t", "test_resnet"), ("mixer_b16", "test_resnet")]


@pytest.mark.parametrize("teacher, student", LARGE_PAIRS)
def test_swin_and_mixer_teachers_work_with_every_heterogeneous_method(teacher, student):
    t, s = models(teacher, student, size=64)
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 10, (2,))
    for method in ("lfcc", "ofa", "cakd", "tas"):
        s.zero_grad(set_to_none=True)
        d = METHODS[method](s, t, distill_config(method=method)).train()
        logits, losses = d(x, x, y)
        assert logits.shape == (2, 10) and all(torch.isfinite(v) for v in losses.values()), method
        sum(losses.values()).backward()
        assert all(p.grad is None for p in t.parameters()), method
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in s.layer1.parameters()), method
    d = TAS(s, t, distill_config(method="tas")).eval()  # the assistant's tail is the teacher's own
    d._assistant_input = lambda native, s_feat, x_t: native
    with torch.no_grad():
        both, reference = t.forward_head(d.teacher_and_assistant(x, torch.zeros(1))), t(x)
    assert torch.allclose(both[:2], reference, atol=1e-4) and torch.allclose(both[2:], reference, atol=1e-4)
