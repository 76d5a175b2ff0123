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


def _build(onnx_path, precision, tmp_path, cache=None):
    import tensorrt as trt

    from lfcc_pipeline.runtimes.trt_engine import build_engine
    from lfcc_pipeline.runtimes.trt_plan import input_profile, plan_build

    plan = plan_build(trt.__version__, precision)
    if plan.onnx_kind != "fp32":
        pytest.skip(
            f"TensorRT {trt.__version__} needs a {plan.onnx_kind} ONNX for {precision} (see test_build_command)"
        )
    engine = tmp_path / f"student.trt-{precision}.engine"
    build_engine(onnx_path, engine, plan, input_profile(["batch", 3, 64, 64], 1, 4, 8), timing_cache=cache)
    return engine


@pytest.mark.parametrize("precision, atol", [("fp32", 1e-2), ("fp16", 0.2)])
def test_engine_matches_onnx_runtime(onnx_model, precision, atol, tmp_path):
    from lfcc_pipeline.runtimes.ort_runner import OrtRunner
    from lfcc_pipeline.runtimes.trt_runner import TrtRunner

    engine = _build(onnx_model, precision, tmp_path, cache=tmp_path / "timing.cache")
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
    from lfcc_pipeline.errors import ArtifactError
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
    from lfcc_pipeline.errors import ConfigError
    from lfcc_pipeline.runtimes.trt_runner import TrtRunner

    runner = TrtRunner(_build(onnx_model, "fp32", tmp_path))
    with pytest.raises(ConfigError, match="profile"):
        runner(np.zeros((9, 3, 64, 64), np.float32))
