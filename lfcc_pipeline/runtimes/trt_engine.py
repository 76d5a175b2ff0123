"""Build TensorRT engines from ONNX and describe them; the thin layer over NVIDIA's Python API.

Written against the TensorRT 8.6, 10.x and 11.x Python APIs (builder, OnnxParser, builder
config, optimization profiles, timing cache, build_serialized_network). Everything version
dependent is decided in trt_plan.py; attributes that disappear between versions are looked up
with getattr. Every parser error is reported. The engine is written atomically with a JSON
beside it: TensorRT version, GPU name and compute capability, precision, shapes, build seconds,
source ONNX hash, and the model's preprocessing and labels copied from the ONNX metadata.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from lfcc_pipeline.core.atomic import sha256_file, write_bytes, write_json
from lfcc_pipeline.core.errors import StageFailed, TargetUnavailable
from lfcc_pipeline.runtimes.trt_plan import BuildPlan, Profile

_logger = logging.getLogger(__name__)
INSTALL_HINT = (
    "install TensorRT where the engine will run (desktop: pip install tensorrt, NVIDIA's wheels for CUDA 12/13; "
    "Jetson: JetPack 6's python3-libnvinfer) or run with --stop-after calibrate and build on the target device"
)


def import_tensorrt():
    """The tensorrt module, or a one-line TargetUnavailable naming what to install."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise TargetUnavailable("TensorRT is not installed (import tensorrt failed)", INSTALL_HINT) from e
    import torch

    if not torch.cuda.is_available():
        raise TargetUnavailable("TensorRT engines need a CUDA GPU and none is visible", INSTALL_HINT)
    return trt


_LOGGERS: dict[int, Any] = {}


def make_logger(trt, severity: str = "WARNING"):
    """The process's trt.ILogger: forwards to Python logging and keeps the messages (deserialization
    failures are only explained through the logger). TensorRT keeps the first logger it is given
    for the whole process, so every Builder and Runtime here gets the same one; callers take a
    `mark()` before an operation and read `reason(mark)` after it fails."""
    if id(trt) in _LOGGERS:
        return _LOGGERS[id(trt)]

    class CapturingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[tuple[int, str]] = []
            self.threshold = int(getattr(trt.ILogger.Severity, severity))
            self.error = int(trt.ILogger.Severity.ERROR)

        def log(self, sev, msg) -> None:  # noqa: D102 - the ILogger callback
            if int(sev) <= self.threshold:
                self.messages.append((int(sev), str(msg)))
                _logger.warning("TensorRT: %s", msg)

        def mark(self) -> int:
            return len(self.messages)

        def reason(self, mark: int, fallback: str) -> str:
            """The last error logged since `mark` (else the last warning that is not a deprecation
            notice, such as 10.12+'s about weak typing), or `fallback`."""
            new = self.messages[mark:]
            errors = [m for sev, m in new if sev <= self.error]
            warnings = [m for _, m in new if "deprecat" not in m.lower()]
            return (errors or warnings or [fallback])[-1]

    _LOGGERS[id(trt)] = CapturingLogger()
    return _LOGGERS[id(trt)]


def gpu_identity(device_index: int = 0) -> dict[str, str]:
    import torch

    props = torch.cuda.get_device_properties(device_index)
    return {"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}"}


def _flags(enum, names: tuple[str, ...]) -> int:
    value = 0
    for name in names:
        member = getattr(enum, name, None)
        if member is None:
            raise TargetUnavailable(f"this TensorRT has no {enum.__name__}.{name}", "check the TensorRT version")
        value |= 1 << int(member)
    return value


def _onnx_metadata(onnx_path: Path) -> dict[str, str]:
    from lfcc_pipeline.core.onnx_meta import read_metadata

    return {k: v for k, v in read_metadata(onnx_path).items() if k.startswith("lfcc.")}


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    plan: BuildPlan,
    profile: Profile,
    input_name: str = "input",
    workspace_bytes: int | None = None,
    timing_cache: Path | None = None,
    source_of_record: Path | None = None,
    extra_meta: dict[str, Any] | None = None,
    dla_core: int | None = None,
) -> dict[str, Any]:
    """Build `onnx_path` into `engine_path` (+ `.json`) following `plan`; return the metadata.

    `source_of_record` is the ONNX the user gave when `onnx_path` is a model made from it on the
    fly (its path, hash and metadata go into the JSON); `extra_meta` is added to the JSON."""
    record = source_of_record or onnx_path
    trt = import_tensorrt()
    logger = make_logger(trt)
    mark = logger.mark()
    t0 = time.perf_counter()
    builder = trt.Builder(logger)
    network = builder.create_network(_flags(trt.NetworkDefinitionCreationFlag, plan.network_flags))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        for err in errors:
            _logger.error("ONNX parser: %s", err)
        raise StageFailed(
            f"TensorRT cannot parse {onnx_path}: {errors[0] if errors else 'unknown error'}"
            + (f" (+{len(errors) - 1} more, printed above)" if len(errors) > 1 else ""),
            "check the ONNX opset and operators against this TensorRT version",
        )
    config = builder.create_builder_config()
    if workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    for name in plan.builder_flags:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is None:
            raise TargetUnavailable(f"TensorRT {trt.__version__} has no BuilderFlag.{name}", "see the build plan")
        config.set_flag(flag)
    if dla_core is not None:
        _use_dla(trt, builder, config, dla_core)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(input_name, *profile.shapes())
    if config.add_optimization_profile(opt_profile) < 0:
        raise StageFailed(f"TensorRT rejected the optimization profile {profile.shapes()}", "check the batch range")
    cache = None
    if timing_cache is not None:
        blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache = config.create_timing_cache(blob)
        if cache is None or not config.set_timing_cache(cache, False):  # corrupt, or another GPU/TensorRT
            _logger.warning("timing cache %s does not match this GPU/TensorRT; starting a new one", timing_cache)
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        reason = logger.reason(mark, "see the TensorRT log above")
        raise StageFailed(f"TensorRT could not build {engine_path.name}: {reason}", "see the TensorRT messages above")
    seconds = time.perf_counter() - t0
    write_bytes(engine_path, bytes(memoryview(serialized)))
    if cache is not None and timing_cache is not None:
        write_bytes(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    meta = {
        "tensorrt": trt.__version__,
        **gpu_identity(),
        "precision": plan.precision,
        "strongly_typed": plan.strongly_typed,
        "network_flags": list(plan.network_flags),
        "builder_flags": list(plan.builder_flags),
        "input": input_name,
        "profile": {"min": profile.shapes()[0], "opt": profile.shapes()[1], "max": profile.shapes()[2]},
        "build_seconds": round(seconds, 2),
        "dla_core": dla_core,
        "source_onnx": str(record),
        "source_onnx_sha256": sha256_file(record),
        "metadata": _onnx_metadata(record),
        **(extra_meta or {}),
    }
    write_json(engine_json(engine_path), meta)
    _logger.info("built %s (%s, %.1f MB) in %.1f s", engine_path.name, plan.precision,
                 engine_path.stat().st_size / 1e6, seconds)  # fmt: skip
    return meta


def _use_dla(trt, builder, config, dla_core: int) -> None:
    """DLA as the default device (core `dla_core`), the GPU for layers DLA cannot run."""
    cores = int(getattr(builder, "num_DLA_cores", 0))
    if dla_core >= cores:
        have = f"{cores} DLA core(s)" if cores else "no DLA (e.g. a discrete GPU or Jetson Orin Nano)"
        raise TargetUnavailable(f"--dla-core {dla_core}, but this machine has {have}",
                                "drop --dla-core" + (f" or use 0..{cores - 1}" if cores else ""))  # fmt: skip
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = dla_core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def engine_json(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".json")


def read_engine_meta(engine_path: Path) -> dict[str, Any]:
    path = engine_json(engine_path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
