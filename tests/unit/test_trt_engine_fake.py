"""build_engine against a stand-in `tensorrt` module that has exactly the documented API of each
version (8.6, 10.x, 11.x), so a call to something a version lacks fails here, without a GPU."""

import json

import pytest
import torch

from lfcc_pipeline.core.errors import StageFailed
from lfcc_pipeline.models.factory import create_model
from lfcc_pipeline.models.onnx_export import export_onnx
from lfcc_pipeline.runtimes import trt_engine
from lfcc_pipeline.runtimes.trt_plan import input_profile, plan_build
from tests.fake_tensorrt import fake_tensorrt


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "student.onnx"
    model, _ = create_model("test_resnet", 10, 32)
    export_onnx(model, path, 32, metadata={"lfcc.preprocess": '{"img_size": 32}', "lfcc.role": "student"})
    return path


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0", "11.1.0"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_engine_follows_the_plan(version, precision, onnx_file, tmp_path, monkeypatch):
    trt, calls = fake_tensorrt(version)
    monkeypatch.setattr(trt_engine, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(trt_engine, "gpu_identity", lambda index=0: {"gpu": "Fake GPU", "compute_capability": "8.9"})
    plan = plan_build(version, precision)
    profile = input_profile(["batch", 3, 32, 32], 1, 4, 16)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"old-cache")
    engine = tmp_path / f"student.trt-{precision}.engine"
    meta = trt_engine.build_engine(onnx_file, engine, plan, profile, workspace_bytes=1 << 28, timing_cache=cache)
    assert engine.read_bytes() == b"PLAN:" + version.encode()
    assert calls["builder_flags"] == list(plan.builder_flags)
    expected = sum(1 << int(getattr(trt.NetworkDefinitionCreationFlag, n)) for n in plan.network_flags)
    assert calls["network_flags"] == expected
    assert calls["profile"] == ("input", (1, 3, 32, 32), (4, 3, 32, 32), (16, 3, 32, 32))
    assert calls["cache_blob"] == b"old-cache" and cache.read_bytes() == b"old-cache+tuned"  # reused and updated
    on_disk = json.loads((tmp_path / f"{engine.name}.json").read_text())
    assert on_disk == json.loads(json.dumps(meta))
    assert on_disk["tensorrt"] == version and on_disk["compute_capability"] == "8.9"
    assert on_disk["metadata"]["lfcc.role"] == "student" and len(on_disk["source_onnx_sha256"]) == 64


def test_every_parser_error_is_reported(onnx_file, tmp_path, monkeypatch, caplog):
    trt, _ = fake_tensorrt("10.3.0", parse_ok=False)
    monkeypatch.setattr(trt_engine, "import_tensorrt", lambda: trt)
    with pytest.raises(StageFailed, match=r"UNSUPPORTED_NODE: op 0 \(\+1 more"):
        trt_engine.build_engine(onnx_file, tmp_path / "x.engine", plan_build("10.3.0", "fp16"),
                                input_profile(["batch", 3, 32, 32], 1, 1, 1))  # fmt: skip
    assert "op 1" in caplog.text
    assert not (tmp_path / "x.engine").exists()


def test_tensorrt_missing_is_one_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorrt(name, *args, **kwargs):
        if name == "tensorrt":
            raise ImportError("No module named 'tensorrt'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorrt)
    from lfcc_pipeline.core.errors import TargetUnavailable

    with pytest.raises(TargetUnavailable) as e:
        trt_engine.import_tensorrt()
    assert "TensorRT is not installed" in e.value.line() and "pip install tensorrt" in e.value.line()
    assert torch.cuda.is_available() or "--stop-after calibrate" in e.value.line()


def test_a_corrupt_timing_cache_is_replaced(onnx_file, tmp_path, monkeypatch):
    trt, calls = fake_tensorrt("10.3.0")
    monkeypatch.setattr(trt_engine, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(trt_engine, "gpu_identity", lambda index=0: {"gpu": "Fake GPU", "compute_capability": "8.9"})
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"corrupt bytes")
    trt_engine.build_engine(onnx_file, tmp_path / "x.engine", plan_build("10.3.0", "fp32"),
                            input_profile(["batch", 3, 32, 32], 1, 1, 1), timing_cache=cache)  # fmt: skip
    assert cache.read_bytes() == b"new-cache+tuned"


def test_the_shared_logger_reports_the_last_error_since_the_mark():
    trt, _ = fake_tensorrt("10.3.0")
    logger = trt_engine.make_logger(trt)
    assert trt_engine.make_logger(trt) is logger  # one per process, as TensorRT keeps the first
    logger.log(trt.ILogger.Severity.ERROR, "an old failure")
    mark = logger.mark()
    assert logger.reason(mark, "fallback") == "fallback"
    logger.log(trt.ILogger.Severity.ERROR, "Serialization assertion failed: magic tag")
    logger.log(trt.ILogger.Severity.WARNING, "a later warning")
    assert logger.reason(mark, "fallback") == "Serialization assertion failed: magic tag"


def test_a_deprecation_notice_is_never_given_as_the_reason_of_a_failure():
    trt, _ = fake_tensorrt("10.13.2")
    logger = trt_engine.make_logger(trt)
    mark = logger.mark()
    logger.log(trt.ILogger.Severity.WARNING, "Weak typing is deprecated and will be removed")
    assert logger.reason(mark, "fallback") == "fallback"
    logger.log(trt.ILogger.Severity.WARNING, "Tactic memory exceeds the workspace")
    assert logger.reason(mark, "fallback") == "Tactic memory exceeds the workspace"
