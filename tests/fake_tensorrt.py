"""A stand-in `tensorrt` module with exactly the documented Python API of one version (8.6, 10.x,
11.x): builder, network flags, builder flags, ONNX parser, optimization profile, timing cache.
A call to something that version lacks fails, so the build code is checked without a GPU. It
records what it was asked to do (flags, profile, the ONNX it parsed) for the tests."""

import enum
import types

import onnx


def fake_tensorrt(version: str, parse_ok: bool = True, dla_cores: int = 0):
    major = int(version.split(".")[0])
    calls = {"network_flags": None, "builder_flags": [], "profile": None, "cache_blob": None, "pool": None,
             "default_device_type": None, "DLA_core": None}  # fmt: skip
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    # 10.x keeps EXPLICIT_BATCH (ignored) beside STRONGLY_TYPED; 11.x has no EXPLICIT_BATCH.
    net_flags = {8: {"EXPLICIT_BATCH": 0}, 10: {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}}.get(
        major, {"STRONGLY_TYPED": 1}
    )
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", net_flags)
    builder_flags = {"TF32": 2} if major >= 11 else {"FP16": 0, "INT8": 1, "TF32": 2}  # 11 removed FP16/INT8
    builder_flags["GPU_FALLBACK"] = 3
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", builder_flags)
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})
    trt.DeviceType = enum.IntEnum("DeviceType", {"GPU": 0, "DLA": 1})

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

        def __setattr__(self, name, value):
            if name in ("default_device_type", "DLA_core"):
                calls[name] = value
            elif name != "cache":
                raise AttributeError(f"IBuilderConfig has no attribute {name}")
            object.__setattr__(self, name, value)

        def set_memory_pool_limit(self, pool, size):
            calls["pool"] = (pool, size)

        def set_flag(self, flag):
            calls["builder_flags"].append(flag.name)

        def add_optimization_profile(self, profile):
            calls["profile"] = profile.shape
            return 0

        def create_timing_cache(self, blob):
            calls["cache_blob"] = bytes(blob)
            return None if bytes(blob).startswith(b"corrupt") else Cache(blob)

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
            model = onnx.load(path)
            calls["parsed"] = path
            calls["parsed_ops"] = {n.op_type for n in model.graph.node}
            calls["parsed_fp16"] = any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
            return parse_ok

        def get_error(self, i):
            return Error(i)

    class Builder:
        num_DLA_cores = dla_cores

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
