"""build_engine against a stand-in `tensorrt` module that has exactly the documented API of each
version (8.6, 10.x, 11.x), so a call to something a version lacks fails here, without a GPU."""

import enum
import json
import types

import pytest
import torch

from lfcc_pipeline.errors import StageFailed
from lfcc_pipeline.models.factory import create_model
from lfcc_pipeline.models.onnx_export import export_onnx
from lfcc_pipeline.runtimes import trt_engine
from lfcc_pipeline.runtimes.trt_plan import input_profile, plan_build


def fake_tensorrt(version: str, parse_ok: bool = True):
    major = int(version.split(".")[0])
    calls = {"network_flags": None, "builder_flags": [], "profile": None, "cache_blob": None, "pool": None}
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    net_flags = {"EXPLICIT_BATCH": 0} if major < 10 else {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", net_flags)
    builder_flags = {"TF32": 2} if major >= 11 else {"FP16": 0, "INT8": 1, "TF32": 2}  # 11 removed FP16/INT8
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", builder_flags)
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})

    class ILogger:
        Severity = enum.IntEnum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4})

        def __init__(self):
            pass

    class Cache:
        def __init__(self, blob):
            self.blob = bytes(blob) or b"new-cache"

        def serialize(self):
            return self.blob + b"+tuned"

    class Config:
        def __init__(self):
            self.cache = None

        def set_memory_pool_limit(self, pool, size):
            calls["pool"] = (pool, size)

        def set_flag(self, flag):
            calls["builder_flags"].append(flag.name)

        def add_optimization_profile(self, profile):
            calls["profile"] = profile.shape
            return 0

        def create_timing_cache(self, blob):
            calls["cache_blob"] = bytes(blob)
            return Cache(blob)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Profile:
        shape = None

        def set_shape(self, name, lo, opt, hi):
            self.shape = (name, lo, opt, hi)

    class Error:
        def __init__(self, i):
            self.i = i

        def __str__(self):
            return f"In node {self.i} (importFoo): UNSUPPORTED_NODE: op {self.i}"

    class OnnxParser:
        def __init__(self, network, logger):
            self.num_errors = 0 if parse_ok else 2

        def parse_from_file(self, path):
            return parse_ok

        def get_error(self, i):
            return Error(i)

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            calls["network_flags"] = flags
            return object()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            return b"PLAN:" + version.encode()

    trt.ILogger, trt.Builder, trt.OnnxParser = ILogger, Builder, OnnxParser
    return trt, calls


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
    from lfcc_pipeline.errors import TargetUnavailable

    with pytest.raises(TargetUnavailable) as e:
        trt_engine.import_tensorrt()
    assert "TensorRT is not installed" in e.value.line() and "pip install tensorrt" in e.value.line()
    assert torch.cuda.is_available() or "--stop-after export" in e.value.line()
