"""The build stage in a run directory, against the stand-in tensorrt module of TensorRT 10 and 11:
which ONNX each (model, target) engine is built from, the manifest, and skipping on a rerun.

Runs in-process (click's CliRunner) so the stand-in can replace `import tensorrt`; the stages
before build are up to date in the calibrated run it copies, so only build runs."""

import json
import shutil

import pytest
from click.testing import CliRunner

from lfcc_pipeline.cli import cli
from lfcc_pipeline.runtimes import targets, trt_engine
from tests.conftest import CALIB_BASE
from tests.fake_tensorrt import fake_tensorrt

pytestmark = pytest.mark.slow
TRT = ["--target", "trt-fp32", "--target", "trt-fp16", "--target", "trt-int8"]


@pytest.fixture
def with_fake_tensorrt(monkeypatch):
    def install(version):
        trt, calls = fake_tensorrt(version)
        monkeypatch.setattr(trt_engine, "import_tensorrt", lambda: trt)
        monkeypatch.setattr(
            trt_engine, "gpu_identity", lambda index=0: {"gpu": "Fake GPU", "compute_capability": "8.7"}
        )
        monkeypatch.setattr(targets, "unavailable_reason", lambda name: None)  # the pre-flight: "TensorRT is here"
        return calls

    return install


@pytest.mark.parametrize(
    "version, fp16_source",
    [("10.3.0", "export/{role}.onnx"), ("11.1.0", "calib/{role}.fp16.onnx")],
)
def test_build_stage_builds_every_engine_from_the_right_onnx(version, fp16_source, calib_run, tmp_path,
                                                             with_fake_tensorrt):  # fmt: skip
    run = tmp_path / "run"
    shutil.copytree(calib_run, run)
    with_fake_tensorrt(version)
    args = ["build", *CALIB_BASE, *TRT, "--opt-batch", "4", "--out", str(run)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert stages["build"]["status"] == "done"
    sources = {"trt-fp32": "export/{role}.onnx", "trt-fp16": fp16_source, "trt-int8": "calib/{role}.int8.trt.onnx"}
    for role in ("teacher", "student"):
        for target, source in sources.items():
            engine = run / "engines" / f"{role}.{target}.engine"
            assert engine.read_bytes() == f"PLAN:{version}".encode()
            meta = json.loads(engine.with_name(engine.name + ".json").read_text())
            assert meta["source_onnx"] == str(run / source.format(role=role))
            assert meta["profile"]["opt"][0] == 4 and meta["profile"]["max"][0] == 32  # max = --bench-batch
            assert f"engines/{role}.{target}.engine" in stages["build"]["outputs"]
    assert (run / "engines" / "timing.cache").is_file()
    started = stages["build"]["started"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert json.loads((run / "manifest.json").read_text())["stages"]["build"]["started"] == started  # skipped


def test_no_calib_teacher_builds_no_int8_teacher_engine(calib_run, tmp_path, with_fake_tensorrt):
    run = tmp_path / "run"
    shutil.copytree(calib_run, run)
    with_fake_tensorrt("10.3.0")
    r = CliRunner().invoke(cli, ["build", *CALIB_BASE, "--target", "trt-int8", "--no-calib-teacher", "--out", str(run)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (run / "engines").glob("*.engine")) == ["student.trt-int8.engine"]


def test_a_new_tensorrt_version_rebuilds_the_engines(calib_run, tmp_path, with_fake_tensorrt, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(calib_run, run)
    with_fake_tensorrt("10.3.0")
    args = ["build", *CALIB_BASE, "--target", "trt-fp32", "--out", str(run)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    from lfcc_pipeline.stages import build

    with_fake_tensorrt("10.13.2")
    monkeypatch.setattr(build, "tensorrt_version", lambda: "10.13.2")  # as `import tensorrt` would now say
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "TensorRT 10.13.2 on Fake GPU" in r.output and "up to date): teacher, distill, export\n" in r.output
    meta = json.loads((run / "engines" / "student.trt-fp32.engine.json").read_text())
    assert meta["tensorrt"] == "10.13.2"  # rebuilt, not skipped as up to date


def test_tensorrt_11_fp16_teacher_without_calibrated_teacher_converts_the_export(calib_run, tmp_path,
                                                                                 with_fake_tensorrt):  # fmt: skip
    run = tmp_path / "run"
    shutil.copytree(calib_run, run)
    calls = with_fake_tensorrt("11.1.0")
    args = ["build", *CALIB_BASE, "--target", "trt-fp16", "--no-calib-teacher", "--out", str(run)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert not (run / "calib" / "teacher.fp16.onnx").exists()  # calibrate removed the stale teacher models
    meta = json.loads((run / "engines" / "teacher.trt-fp16.engine.json").read_text())
    assert meta["source_onnx"] == str(run / "export" / "teacher.onnx") and "converted" in meta
    assert calls["parsed_fp16"]


def test_build_without_a_tensorrt_target_is_one_line(calib_run):
    r = CliRunner().invoke(cli, ["build", *CALIB_BASE, "--target", "ort-int8", "--out", str(calib_run)])
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "build needs a TensorRT target" in lines[0], r.output
