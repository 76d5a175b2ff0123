"""Every distillation method end to end through the CLI with the tiny timm models."""

import json

import pytest

from tests.conftest import FAST, cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "method, teacher, student",
    [("lfcc", "test_vit", "test_resnet"), ("ofa", "test_vit", "test_resnet"), ("ofa", "test_resnet", "test_vit"),
     ("none", "test_vit", "test_resnet"), ("cakd", "test_vit", "test_resnet"), ("tas", "test_vit", "test_resnet"),
     ("tas", "test_resnet", "test_vit")],
)  # fmt: skip
def test_method_end_to_end(method, teacher, student, tmp_path):
    out = tmp_path / method
    r = cli("run", "--teacher", teacher, "--student", student, "--method", method, "--target", "ort-fp32",
            "--out", str(out), *FAST)  # fmt: skip
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "student" / "metrics.json").read_text())
    assert metrics["method"] == method and metrics["history"][0]["train_loss"] > 0
    if method == "lfcc":
        assert "loss_lfcc" in metrics["history"][0]
    if method == "ofa":
        assert "loss_ofa" in metrics["history"][0]
    if method == "cakd":
        assert {"loss_pca", "loss_gl"} <= set(metrics["history"][0])
    if method == "tas":
        assert {"loss_ta", "loss_as", "loss_ts"} <= set(metrics["history"][0])
    rows = json.loads((out / "bench" / "report.json").read_text())["rows"]
    student_row = next(x for x in rows if x["model"] == "student")
    # the exported student is the bare student: same parameter count as the timm model
    import timm

    expected = sum(p.numel() for p in timm.create_model(student, num_classes=10).parameters()) / 1e6
    assert abs(student_row["params_m"] - expected) < 0.02


def test_lfcc_options_reach_the_method(tmp_path):
    out = tmp_path / "opts"
    r = cli("distill", "--teacher", "test_vit", "--student", "test_resnet", "--out", str(out), *FAST,
            "--lfcc-stages", "5:4", "--lfcc-scales", "1,2", "--lfcc-dim", "32", "--lfcc-weight", "0.5")  # fmt: skip
    assert r.returncode == 0, r.stderr
    entry = json.loads((out / "manifest.json").read_text())["stages"]["distill"]
    assert entry["status"] == "done"


def test_cakd_multiview_runs(tmp_path):
    out = tmp_path / "cakd"
    r = cli("distill", "--teacher", "test_vit", "--student", "test_resnet", "--method", "cakd", "--out", str(out),
            *FAST, "--cakd-multiview", "--cakd-gl-weight", "0.5")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "loss_adv" in json.loads((out / "student" / "metrics.json").read_text())["history"][0]


@pytest.mark.parametrize(
    "flag, value, words",
    [("--lfcc-stages", "3-1", "TEACHER:STUDENT"), ("--lfcc-stages", "9:1", "out of range"),
     ("--lfcc-scales", "0,2", "--lfcc-scales"), ("--ofa-eps", "0.5", "--ofa-eps"), ("--preset", "mnist", "--preset"),
     ("--cakd-replace-prob", "1.5", "--cakd-replace-prob"), ("--tas-split", "3:3,5:4", "TEACHER:STUDENT"),
     ("--method tas --tas-split", "9:1", "out of range")],
)  # fmt: skip
def test_bad_method_options(flag, value, words, tmp_path):
    r = cli("distill", "--teacher", "test_vit", "--student", "test_resnet", "--out", str(tmp_path / "x"), *FAST,
            *flag.split(), value)  # fmt: skip
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr, r.stderr
