"""Stage `build`: TensorRT engines for the trt-* targets, engines/<role>.<target>.engine (+ .json).

Sources: trt-fp32 builds from export/<role>.onnx; trt-fp16 from the same FP32 ONNX with the FP16
flag (TensorRT 8.6/10) or from calib/<role>.fp16.onnx (TensorRT 11, or 10 with --strongly-typed);
trt-int8 from calib/<role>.int8.trt.onnx (strongly typed: its FP16-outside twin .int8.trt-fp16.onnx). One timing cache (engines/timing.cache unless --timing-cache) is
reused and updated by every build, so rebuilding after a change is quick.
"""

from __future__ import annotations

from lfcc_pipeline.core import layout
from lfcc_pipeline.core.config import RunConfig, as_dict
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.core.stage import Stage, StageContext, StageResult
from lfcc_pipeline.core.targets import parse_target
from lfcc_pipeline.runtimes.targets import check_runnable
from lfcc_pipeline.runtimes.trt_build import BuildRequest, build_target
from lfcc_pipeline.runtimes.trt_install import tensorrt_version
from lfcc_pipeline.runtimes.trt_plan import plan_build


def needed(cfg: RunConfig) -> bool:
    return bool(layout.trt_targets(cfg))


def machine() -> dict:
    """What an engine is tied to: the TensorRT version and the GPU (a change means rebuild)."""
    import torch

    from lfcc_pipeline.runtimes.trt_engine import gpu_identity

    return {"tensorrt": tensorrt_version(), **(gpu_identity() if torch.cuda.is_available() else {})}


def config_slice(cfg: RunConfig) -> dict:
    b = as_dict(cfg.build)
    b.pop("timing_cache")  # a cache makes builds faster, not different
    b["max_batch"] = cfg.build.resolved_max(cfg.bench.batch_size)
    return {"build": b, "builds": layout.engine_builds(cfg), "machine": machine() if needed(cfg) else None}


def _source(cfg: RunConfig, ctx: StageContext, role: str, target: str, trt_version: str):
    """(ONNX to build from, calib.npz or None): calibrate's model where the plan needs FP16 or Q/DQ and
    this run calibrated the role; else the FP32 export (converted on the fly from calib.npz if needed)."""
    kind = plan_build(trt_version, parse_target(target).precision, cfg.build.strongly_typed).onnx_kind
    fp32 = layout.require(ctx.run_dir, layout.onnx(role), "export")
    if kind == "fp32":
        return fp32, None
    if role in layout.calib_roles(cfg):
        flavour = "int8.trt" if kind == "qdq" else "fp16"
        return layout.require(ctx.run_dir, layout.calib_model(role, flavour), "calibrate"), None
    return fp32, layout.require(ctx.run_dir, layout.CALIB_NPZ, "calibrate")  # --no-calib-teacher


def run(cfg: RunConfig, ctx: StageContext) -> StageResult:
    from lfcc_pipeline.runtimes.trt_engine import engine_json, import_tensorrt

    if not layout.engine_builds(cfg):
        raise ConfigError("the build stage has no TensorRT target", "add --target trt-fp16 (or trt-fp32, trt-int8)")
    version = import_tensorrt().__version__
    cache = cfg.build.timing_cache or ctx.path(layout.TIMING_CACHE)
    outputs, lines = [], []
    for role, target in layout.engine_builds(cfg):
        rel = layout.engine(role, target)
        onnx, calib = _source(cfg, ctx, role, target, version)
        meta = build_target(BuildRequest.from_config(cfg, onnx, target, ctx.path(rel), calib, cache))
        outputs += [rel, str(engine_json(ctx.path(rel)).relative_to(ctx.run_dir))]
        lines.append(f"{role} {target} {meta['build_seconds']:.0f} s")
    return StageResult(outputs=outputs, summary=f"TensorRT {version} on {meta['gpu']}: " + ", ".join(lines))


def check(cfg: RunConfig) -> None:
    """Every target must run here once a run reaches build or bench (TargetUnavailable otherwise)."""
    check_runnable(cfg.bench.targets, cfg.bench.ort_provider)


STAGE = Stage(
    "build", ("export", "calibrate"), run, config_slice, needed=needed, check=check, check_unless_reached=False
)
