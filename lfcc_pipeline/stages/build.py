"""Stage `build`: TensorRT engines for the trt-* targets, engines/<role>.<target>.engine (+ .json).

Sources: trt-fp32 builds from export/<role>.onnx; trt-fp16 from the same FP32 ONNX with the FP16
flag (TensorRT 8.6/10) or from calib/<role>.fp16.onnx (TensorRT 11, strongly typed); trt-int8 from
calib/<role>.int8.trt.onnx. One timing cache (engines/timing.cache unless --timing-cache) is
reused and updated by every build, so rebuilding after a change is quick.
"""

from __future__ import annotations

from lfcc_pipeline.core.config import RunConfig, as_dict
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.pipeline.stage import Stage, StageContext, StageResult
from lfcc_pipeline.runtimes.targets import tensorrt_version
from lfcc_pipeline.runtimes.trt_build import TRT_TARGETS, BuildRequest, build_target
from lfcc_pipeline.runtimes.trt_plan import plan_build
from lfcc_pipeline.stages import calibrate, common

TIMING_CACHE = "engines/timing.cache"


def engine_rel(role: str, target: str) -> str:
    return f"engines/{role}.{target}.engine"


def targets(cfg: RunConfig) -> list[str]:
    return [t for t in cfg.bench.targets if t in TRT_TARGETS]


def needed(cfg: RunConfig) -> bool:
    return bool(targets(cfg))


def builds(cfg: RunConfig) -> list[tuple[str, str]]:
    """(role, target) pairs to build: both roles, except INT8 teachers under --no-calib-teacher."""
    return [
        (role, target)
        for role in ("teacher", "student")
        for target in targets(cfg)
        if target != "trt-int8" or role in calibrate.roles(cfg)
    ]


def machine() -> dict:
    """What an engine is tied to: the TensorRT version and the GPU (a change means rebuild)."""
    import torch

    from lfcc_pipeline.runtimes.trt_engine import gpu_identity

    return {"tensorrt": tensorrt_version(), **(gpu_identity() if torch.cuda.is_available() else {})}


def config_slice(cfg: RunConfig) -> dict:
    b = as_dict(cfg.build)
    b.pop("timing_cache")  # a cache makes builds faster, not different
    b["max_batch"] = cfg.build.resolved_max(cfg.bench.batch_size)
    return {"build": b, "builds": builds(cfg), "machine": machine() if needed(cfg) else None}


def _source(cfg: RunConfig, ctx: StageContext, role: str, target: str, trt_version: str):
    """(ONNX to build from, calib.npz or None): calibrate's model where the plan needs FP16 or Q/DQ and
    this run calibrated the role; else the FP32 export (converted on the fly from calib.npz if needed)."""
    kind = plan_build(trt_version, target.split("-")[1]).onnx_kind
    fp32 = common.require(ctx.run_dir, common.TEACHER_ONNX if role == "teacher" else common.STUDENT_ONNX, "export")
    if kind == "fp32":
        return fp32, None
    if role in calibrate.roles(cfg):
        flavour = "int8.trt" if kind == "qdq" else "fp16"
        return common.require(ctx.run_dir, calibrate.model_rel(role, flavour), "calibrate"), None
    return fp32, common.require(ctx.run_dir, calibrate.CALIB_NPZ, "calibrate")  # --no-calib-teacher


def run(cfg: RunConfig, ctx: StageContext) -> StageResult:
    from lfcc_pipeline.runtimes.trt_engine import engine_json, import_tensorrt

    if not builds(cfg):
        raise ConfigError("the build stage has no TensorRT target", "add --target trt-fp16 (or trt-fp32, trt-int8)")
    version = import_tensorrt().__version__
    cache = cfg.build.timing_cache or ctx.path(TIMING_CACHE)
    outputs, lines = [], []
    for role, target in builds(cfg):
        rel = engine_rel(role, target)
        onnx, calib = _source(cfg, ctx, role, target, version)
        meta = build_target(
            BuildRequest(
                onnx=onnx, target=target, engine=ctx.path(rel), calib=calib, spec=calibrate.spec(cfg),
                min_batch=cfg.build.min_batch, opt_batch=cfg.build.opt_batch,
                max_batch=cfg.build.resolved_max(cfg.bench.batch_size), workspace_mb=cfg.build.workspace_mb,
                timing_cache=cache,
            )
        )  # fmt: skip
        outputs += [rel, str(engine_json(ctx.path(rel)).relative_to(ctx.run_dir))]
        lines.append(f"{role} {target} {meta['build_seconds']:.0f} s")
    return StageResult(outputs=outputs, summary=f"TensorRT {version} on {meta['gpu']}: " + ", ".join(lines))


STAGE = Stage(
    "build",
    ("export", "calibrate"),
    run,
    config_slice,
    needed=needed,
    help="build TensorRT engines for the trt-* targets",
)
