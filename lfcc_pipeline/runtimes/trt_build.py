"""One trt-* target from one ONNX file: pick (or make) the ONNX the build plan needs, derive the
optimization profile from the ONNX input, build the engine, describe it.

Shared by the `build` stage (engines/ in a run directory) and the standalone `build --onnx`
command. What each TensorRT version needs is decided in trt_plan.py: TensorRT 8.6/10 build FP16
from the FP32 ONNX with a builder flag; TensorRT 11 (strongly typed) needs an FP16 ONNX; INT8 is
always an explicit Q/DQ ONNX in the TensorRT flavour. Given an FP32 ONNX and a calib.npz, the
FP16 or Q/DQ model is made on the fly with the calibration library and discarded after the build.
Strongly typed INT8 builds (TensorRT 11) parse the FP16-outside-Q/DQ form of the Q/DQ model
(<model>.int8.trt-fp16.onnx beside <model>.int8.trt.onnx, or made on the fly), so the layers outside
the INT8 regions run in FP16 rather than in the FP32 of the preview model.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfcc_pipeline.calib import checks, graph
from lfcc_pipeline.calib.calibset import load_calibset, model_inputs
from lfcc_pipeline.calib.fp16 import convert_fp16
from lfcc_pipeline.calib.qdq import QuantSpec, quantize_int8
from lfcc_pipeline.calib.qdq_fp16 import qdq_fp16
from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.core.errors import ArtifactError, ConfigError
from lfcc_pipeline.core.onnx_meta import metadata, preprocess_of
from lfcc_pipeline.core.targets import TRT_TARGETS, parse_target
from lfcc_pipeline.runtimes import trt_engine
from lfcc_pipeline.runtimes.trt_plan import BuildPlan, check_dla, input_profile, plan_build

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildRequest:
    onnx: Path
    target: str  # trt-fp32 | trt-fp16 | trt-int8
    engine: Path
    calib: Path | None = None  # calib.npz: lets an FP32 ONNX become the FP16 / Q/DQ model a plan needs
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 32
    workspace_mb: int | None = None
    timing_cache: Path | None = None
    spec: QuantSpec = field(default_factory=QuantSpec)  # calibration settings for an on-the-fly Q/DQ model
    dla_core: int | None = None  # Jetson: build for this DLA core (GPU fallback); needs a static batch
    strongly_typed: bool = False  # TensorRT 10: build strongly typed, as TensorRT 11 always does

    @classmethod
    def from_config(
        cls, cfg: RunConfig, onnx: Path, target: str, engine: Path, calib: Path | None, timing_cache: Path | None
    ) -> BuildRequest:
        """The request the --*-batch, --workspace-mb and --calib-* options state (the one place it is made)."""
        b = cfg.build
        return cls(onnx=onnx, target=target, engine=engine, calib=calib, spec=QuantSpec.from_config(cfg.calib),
                   min_batch=b.min_batch, opt_batch=b.opt_batch, max_batch=b.resolved_max(cfg.bench.batch_size),
                   workspace_mb=b.workspace_mb, timing_cache=timing_cache,
                   dla_core=b.dla_core, strongly_typed=b.strongly_typed)  # fmt: skip


def default_engine_path(onnx: Path, target: str) -> Path:
    """Beside the ONNX: export/student.onnx or calib/student.int8.trt.onnx -> student.<target>.engine."""
    return onnx.with_name(f"{onnx.name.split('.')[0]}.{target}.engine")


def onnx_kind(model) -> str:
    """fp32 | fp16 | qdq (TensorRT-flavour Q/DQ) | int8-cpu (ONNX Runtime's integer kernels, not for TensorRT)."""
    kind = graph.precision(model)
    if kind != "int8":
        return kind
    integer_ops = graph.INTEGER_OPS & {n.op_type for n in model.graph.node}
    return "int8-cpu" if integer_ops or checks.trt_qdq_problems(model) else "qdq"


KIND_WORDS = {"fp32": "an FP32 model", "fp16": "an FP16 model", "qdq": "an INT8 Q/DQ model (TensorRT flavour)",
              "int8-cpu": "an INT8 model for ONNX Runtime's CPU kernels"}  # fmt: skip


def _load(path: Path):
    if not path.is_file():
        raise ArtifactError(f"ONNX file {path} does not exist", "pass the student.onnx that export wrote")
    try:
        return graph.load(path)
    except ArtifactError:
        raise
    except Exception as e:  # onnx raises DecodeError and friends for other files
        raise ArtifactError(f"{path} is not a readable ONNX file ({type(e).__name__})", "re-export it") from e


def source_plan(plan: BuildPlan, kind: str, req: BuildRequest, trt_version: str) -> str:
    """How to get the ONNX the plan needs from `kind`: "as-is", "to-fp16" or "to-qdq" (ConfigError if impossible)."""
    given = f"{req.onnx.name} is {KIND_WORDS[kind]}"
    if kind == "int8-cpu":
        problems = checks.trt_qdq_problems(_load(req.onnx))[:2] or ["it uses ONNX Runtime's integer operators"]
        raise ConfigError(f"{given}, not what TensorRT takes: {'; '.join(problems)}",
                          "pass calib/<model>.int8.trt.onnx, or the FP32 ONNX with --calib calib.npz")  # fmt: skip
    need = plan.onnx_kind
    if kind == need or (need == "fp32" and kind == "fp16" and plan.precision == "fp16"):
        return "as-is"  # TensorRT 8.6/10 also parse an FP16 ONNX for an FP16 engine
    if kind == "fp32" and need in ("fp16", "qdq"):
        if req.calib is None:
            what = "FP16 ONNX" if need == "fp16" else "INT8 Q/DQ ONNX"
            made_by = "calib/<model>.fp16.onnx" if need == "fp16" else "calib/<model>.int8.trt.onnx"
            raise ConfigError(
                f"{req.target} on TensorRT {trt_version} builds from an {what} and {given}",
                f"pass {made_by} (made by lfcc-pipeline calibrate), or add --calib calib.npz to make it now",
            )
        return f"to-{need}"
    want = {"fp32": "the FP32 ONNX (export/<model>.onnx)", "fp16": "an FP16 ONNX or the FP32 one with --calib",
            "qdq": "a TensorRT-flavour Q/DQ ONNX, or the FP32 one with --calib"}[need]  # fmt: skip
    raise ConfigError(f"{req.target} on TensorRT {trt_version} needs {want}; {given}", "pass the matching ONNX file")


def strongly_typed_twin(onnx: Path) -> Path | None:
    """calib/<model>.int8.trt-fp16.onnx beside a calib/<model>.int8.trt.onnx, where calibrate wrote one."""
    if not onnx.name.endswith(".int8.trt.onnx"):
        return None
    twin = onnx.with_name(onnx.name[: -len(".int8.trt.onnx")] + ".int8.trt-fp16.onnx")
    return twin if twin.is_file() else None


def _calibration_inputs(req: BuildRequest, model):
    cs = load_calibset(req.calib)
    pre = preprocess_of(metadata(model), req.onnx, required=False)  # None: not ours; the set's own normalisation
    _, dims = graph.input_info(model)
    return model_inputs(cs, pre, dims, model_name=req.onnx.name, origin=str(req.calib))


def build_target(req: BuildRequest) -> dict[str, Any]:
    """Build `req.engine` (+ .json) for `req.target` from `req.onnx`; return the engine's metadata.

    Checks the inputs and that TensorRT is importable before any conversion work; raises one-line
    LfccErrors (TensorRT missing, wrong ONNX for the target, profile outside the input's range)."""
    if req.target not in TRT_TARGETS:
        raise ConfigError(f"build makes TensorRT engines, not --target {req.target}", f"use {', '.join(TRT_TARGETS)}")
    model = _load(req.onnx)
    input_name, dims = graph.input_info(model)
    profile = input_profile(list(dims), req.min_batch, req.opt_batch, req.max_batch)
    trt = trt_engine.import_tensorrt()
    plan = plan_build(trt.__version__, parse_target(req.target).precision, req.strongly_typed)
    if req.dla_core is not None:
        check_dla(trt.__version__, plan.precision, profile, req.dla_core)
    how = source_plan(plan, onnx_kind(model), req, trt.__version__)
    extra: dict[str, Any] = {"target": req.target}
    with tempfile.TemporaryDirectory(prefix="lfcc-build-") as tmp:
        src = req.onnx
        if how != "as-is":
            data = _calibration_inputs(req, model)
            src = Path(tmp) / f"{req.onnx.stem}.{how[3:]}.onnx"
            label = req.onnx.name
            if how == "to-fp16":
                produced = convert_fp16(req.onnx, src, data, req.spec, label)
            else:
                produced = quantize_int8(req.onnx, src, data, req.spec, "trt", label)
                checks.verify_produced(produced, label)
                if plan.strongly_typed:  # FP16 outside the INT8 regions
                    src = qdq_fp16(src, Path(tmp) / f"{req.onnx.stem}.qdq-fp16.onnx", data, label).path
            extra["converted"] = f"{how[3:]} made from {req.onnx.name} with {produced.tool} on {req.calib}"
            _logger.info("build: %s", extra["converted"])
        elif plan.strongly_typed and plan.precision == "int8" and strongly_typed_twin(req.onnx) is not None:
            src = strongly_typed_twin(req.onnx)
            extra["strongly_typed_onnx"] = str(src)
            _logger.info("build: strongly typed INT8 from %s (FP16 outside the Q/DQ regions)", src.name)
        return trt_engine.build_engine(
            src, req.engine, plan, profile, input_name,
            workspace_bytes=req.workspace_mb * (1 << 20) if req.workspace_mb else None,
            timing_cache=req.timing_cache, source_of_record=req.onnx, extra_meta=extra, dla_core=req.dla_core,
        )  # fmt: skip
