"""TensorRT engines end to end: build, run, compare with ONNX Runtime. Run on a GPU with TensorRT."""

import json

import numpy as np
import pytest

from tests.gpu.conftest import needs_tensorrt

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt, needs_tensorrt]


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    from lfcc_pipeline.models.factory import create_model
    from lfcc_pipeline.models.onnx_export import export_onnx

    path = tmp_path_factory.mktemp("trt") / "student.onnx"
    model, _ = create_model("test_resnet", 10, 64)
    export_onnx(model, path, 64, metadata={"lfcc.preprocess": json.dumps({"img_size": 64, "mean": [0.5] * 3,
                                                                          "std": [0.5] * 3}), "lfcc.role": "student"})  # fmt: skip
    return path


@pytest.fixture(scope="module")
def calib_npz(tmp_path_factory):
    from lfcc_pipeline.calib.calibset import CalibSet, save_calibset
    from lfcc_pipeline.data.sources import load_dataset
    from lfcc_pipeline.data.specs import parse_data_spec

    ds = load_dataset(parse_data_spec("fashion-mini"))
    path = tmp_path_factory.mktemp("trt_calib") / "calib.npz"
    save_calibset(path, CalibSet(ds.train.images[:64].numpy(), ds.train.labels[:64].numpy().astype(np.int64), 64,
                                 "stretch", 1.0, (0.5,) * 3, (0.5,) * 3, tuple(ds.classes)))  # fmt: skip
    return path


def _build(onnx_path, precision, tmp_path, cache=None, calib=None):
    """Through build_target: on TensorRT 11 (FP16) and for INT8 the ONNX is converted with `calib`."""
    from lfcc_pipeline.calib.qdq import QuantSpec
    from lfcc_pipeline.runtimes.trt_build import BuildRequest, build_target

    engine = tmp_path / f"student.trt-{precision}.engine"
    build_target(BuildRequest(onnx_path, f"trt-{precision}", engine, calib, 1, 4, 8, timing_cache=cache,
                              spec=QuantSpec(method="max", tool="ort")))  # fmt: skip
    return engine


@pytest.mark.parametrize("precision, atol", [("fp32", 1e-2), ("fp16", 0.2), ("int8", 1.0)])
def test_engine_matches_onnx_runtime(onnx_model, calib_npz, precision, atol, tmp_path):
    from lfcc_pipeline.runtimes.ort_runner import OrtRunner
    from lfcc_pipeline.runtimes.trt_runner import TrtRunner

    engine = _build(onnx_model, precision, tmp_path, cache=tmp_path / "timing.cache", calib=calib_npz)
    assert (tmp_path / "timing.cache").stat().st_size > 0
    x = np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32)
    ref = OrtRunner(onnx_model)(x)
    runner = TrtRunner(engine)
    for n in (1, 8):  # dynamic batch within the profile
        got = runner(x[:n])
        assert got.shape == (n, 10)
        assert np.abs(got - ref[:n]).max() < atol
    graph = TrtRunner(engine, cuda_graph=True)
    assert np.allclose(graph(x[:4]), runner(x[:4]), atol=1e-3)
    assert np.allclose(graph(x[4:]), runner(x[4:]), atol=1e-3)  # replay with new data


def test_engine_from_another_tensorrt_is_refused(onnx_model, tmp_path):
    from lfcc_pipeline.core.errors import ArtifactError
    from lfcc_pipeline.runtimes.trt_engine import engine_json
    from lfcc_pipeline.runtimes.trt_runner import TrtRunner

    engine = _build(onnx_model, "fp32", tmp_path)
    meta = json.loads(engine_json(engine).read_text())
    engine_json(engine).write_text(json.dumps({**meta, "tensorrt": "0.0.1"}))
    with pytest.raises(ArtifactError, match="rebuild"):
        TrtRunner(engine)
    engine_json(engine).unlink()  # without the JSON, TensorRT itself must say no to a corrupt plan
    engine.write_bytes(b"not an engine")
    with pytest.raises(ArtifactError, match="rebuild"):
        TrtRunner(engine)


def test_batch_outside_the_profile(onnx_model, tmp_path):
    from lfcc_pipeline.core.errors import ConfigError
    from lfcc_pipeline.runtimes.trt_runner import TrtRunner

    runner = TrtRunner(_build(onnx_model, "fp32", tmp_path))
    with pytest.raises(ConfigError, match="profile"):
        runner(np.zeros((9, 3, 64, 64), np.float32))


def test_run_with_tensorrt_targets_builds_and_benchmarks_engines(tmp_path):
    from tests.conftest import CALIB_BASE, cli

    out = tmp_path / "run"
    r = cli("run", *CALIB_BASE, "--target", "trt-fp16", "--target", "trt-int8", "--device", "cuda", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = json.loads((out / "bench" / "report.json").read_text())["rows"]
    got = {(row["model"], row["target"]) for row in rows if row.get("latency_ms")}
    assert {("student", "trt-fp16"), ("student", "trt-int8"), ("teacher", "trt-fp16")} <= got
    assert all("latency_e2e_ms" in row for row in rows if row["target"].startswith("trt-") and row.get("latency_ms"))
