"""The run directory: where every stage's artifacts live (paths relative to the run directory).

teacher/  model.safetensors, metrics.json, checkpoints/last.pt   (the same under student/)
export/   student.onnx, teacher.onnx, parity.json; <role>.ov.xml/.bin (OpenVINO IR, with an ov-* target)
calib/    calib.npz, accuracy.json, <role>.<flavour>.onnx (int8.trt, int8.cpu, fp16),
          <role>.int8.trt-fp16.onnx (strongly typed TensorRT), sensitivity.json/.png (when measured),
          <role>.int8.ov.xml/.bin (OpenVINO IR of the int8.cpu model, with --target ov-int8)
engines/  <role>.<target>.engine (+ .json), timing.cache
bench/    report.json, report.md, report.png
bundle/   what an app needs (see the bundle stage)
tb/       TensorBoard event files: tb/teacher, tb/distill (training curves), tb/bench (the report)
"""

from __future__ import annotations

from pathlib import Path

from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.core.errors import ArtifactError
from lfcc_pipeline.core.targets import OV_TARGETS, TRT_TARGETS

ROLES = ("teacher", "student")
CONFIG = "config.yaml"  # the run's resolved configuration (lfcc-pipeline run --config reproduces it)
PARITY = "export/parity.json"
CALIB_NPZ = "calib/calib.npz"
CALIB_ACCURACY = "calib/accuracy.json"
CALIB_SENSITIVITY, CALIB_SENSITIVITY_PNG = "calib/sensitivity.json", "calib/sensitivity.png"
CALIB_FLAVOURS = ("int8.trt", "int8.cpu", "fp16")
CALIB_TRT_FP16 = "int8.trt-fp16"  # the FP16-outside-Q/DQ form of int8.trt, for strongly typed TensorRT
TIMING_CACHE = "engines/timing.cache"
REPORT_JSON, REPORT_MD, REPORT_PNG = "bench/report.json", "bench/report.md", "bench/report.png"


def weights(role: str) -> str:
    return f"{role}/model.safetensors"


def metrics(role: str) -> str:
    return f"{role}/metrics.json"


def checkpoint(role: str) -> str:
    return f"{role}/checkpoints/last.pt"


def tensorboard(stage: str) -> str:
    """tb/<stage>: the TensorBoard event files of the teacher, distill or bench stage."""
    return f"tb/{stage}"


def onnx(role: str) -> str:
    """export/<role>.onnx, the FP32 export."""
    return f"export/{role}.onnx"


def calib_model(role: str, flavour: str) -> str:
    """calib/<role>.<flavour>.onnx, e.g. calib/student.int8.cpu.onnx."""
    return f"calib/{role}.{flavour}.onnx"


def ov_ir(role: str, precision: str) -> str:
    """The OpenVINO IR (.xml; its .bin beside it) of `role`: export/<role>.ov.xml (fp32, which ov-fp16 runs too)
    or calib/<role>.int8.ov.xml (converted from calib/<role>.int8.cpu.onnx)."""
    return f"calib/{role}.int8.ov.xml" if precision == "int8" else f"export/{role}.ov.xml"


def ov_bin(xml: str) -> str:
    return xml[: -len(".xml")] + ".bin"


def ov_targets(cfg: RunConfig) -> list[str]:
    return [t for t in cfg.bench.targets if t in OV_TARGETS]


def engine(role: str, target: str) -> str:
    return f"engines/{role}.{target}.engine"


def calib_roles(cfg: RunConfig) -> tuple[str, ...]:
    """The roles calibrate makes models for: the student, and the teacher unless --no-calib-teacher."""
    return ("student", "teacher") if cfg.calib.teacher else ("student",)


def trt_targets(cfg: RunConfig) -> list[str]:
    return [t for t in cfg.bench.targets if t in TRT_TARGETS]


def engine_builds(cfg: RunConfig) -> list[tuple[str, str]]:
    """(role, target) engines the build stage makes: both roles, except INT8 teachers under --no-calib-teacher."""
    return [
        (role, target)
        for role in ROLES
        for target in trt_targets(cfg)
        if target != "trt-int8" or role in calib_roles(cfg)
    ]


def require(run_dir: Path, rel: str, stage: str) -> Path:
    """run_dir/rel, or ArtifactError saying which stage makes it."""
    path = run_dir / rel
    if not path.is_file():
        raise ArtifactError(f"{path} is missing", f"run the {stage} stage first (or the whole pipeline with `run`)")
    return path
