"""Bad input: one clear line on stderr, a non-zero exit, no traceback."""

import pytest
from click.testing import CliRunner

from lfcc_pipeline.cli import cli

BASE = ["--data", "fashion-mini", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd"]


def invoke(args, tmp_path):
    return CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "run")] if args and args[0] != "doctor" else args)


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", *BASE, "--teacher", "vit_nonexistent"], "unknown model"),
        (["run", *BASE, "--target", "trt-fp64"], "unknown --target"),
        (["run", *BASE, "--target", "trt-fp16"], "TensorRT"),
        (["run", *BASE, "--data", "mnist"], "unknown data spec"),
        (["run", *BASE, "--data", "fashion-mnist:/no/such/dir"], "does not exist"),
        (["run", *BASE, "--data", "imagefolder:/no/such/dir"], "does not exist"),
        (["run", *BASE, "--epochs", "-1"], "--epochs"),
        (["run", *BASE, "--batch-size", "0"], "--batch-size"),
        (["run", *BASE, "--img-size", "40"], "cannot take 40x40"),
        (["run", *BASE, "--method", "magic"], "unknown --method"),
        (["run", *BASE, "--device", "tpu"], "--device"),
        (["run", *BASE, "--epochs", "three"], "not a valid integer"),
        (["run", *BASE, "--no-such-flag"], "No such option"),
        (["run", *BASE, "--teacher-weights", "/no/such/file.pt"], "does not exist"),
        (["run", *BASE, "--stop-after", "deploy"], "deploy"),
        # the calibration set is checked against the training split before the teacher trains
        (["run", *BASE, "--train-subset", "64", "--batch-size", "16", "--target", "ort-int8"], "--calib-size 512"),
    ],
)
def test_bad_input_is_one_line(args, words, tmp_path):
    r = invoke(args, tmp_path)
    assert r.exit_code != 0
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1, r.output
    assert lines[0].startswith("error: ") and words in lines[0], lines[0]
    assert "Traceback" not in r.output
    assert not (tmp_path / "run" / "teacher").exists()  # failed before any stage ran


def test_every_command_has_help_with_an_example():
    for name in ("run", "teacher", "distill", "export", "bench", "models", "doctor"):
        r = CliRunner().invoke(cli, [name, "--help"])
        assert r.exit_code == 0 and "Example" in r.output and "lfcc-pipeline" in r.output


def test_doctor_reports_tensorrt_and_targets():
    r = CliRunner().invoke(cli, ["doctor"])
    assert r.exit_code == 0
    assert "tensorrt" in r.output and "ort-fp32" in r.output and "torch" in r.output


def test_models_lists_short_names():
    r = CliRunner().invoke(cli, ["models"])
    assert r.exit_code == 0
    assert "deit_small_patch16_224" in r.output and "resnet18" in r.output and "mlp" in r.output
