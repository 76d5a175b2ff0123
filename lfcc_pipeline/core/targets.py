"""The deployment targets, in one table: name, runtime, precision, and what each needs.

The CLI's --target choices, the config validation, the runner's pre-flight, and the calibrate,
build and bench stages all read this table; nothing else splits a target name by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from lfcc_pipeline.core.errors import ConfigError


@dataclass(frozen=True)
class Target:
    name: str
    runtime: str  # torch | ort | trt | ov (OpenVINO)
    precision: str  # fp32 | fp16 | int8
    calib_flavour: str | None = (
        None  # calibrate's model it runs (ort) or builds from (trt): calib/<role>.<flavour>.onnx
    )

    @property
    def needs_calibrate(self) -> bool:
        """Whether it needs the calibrate stage's models (trt-fp16 only on TensorRT 11, see runtimes.targets)."""
        return self.calib_flavour is not None

    @property
    def needs_build(self) -> bool:
        """Whether it needs an engine from the build stage."""
        return self.runtime == "trt"


TABLE: tuple[Target, ...] = (
    Target("torch", "torch", "fp32"),
    Target("ort-fp32", "ort", "fp32"),
    Target("ort-fp16", "ort", "fp16", "fp16"),
    Target("ort-int8", "ort", "int8", "int8.cpu"),
    Target("trt-fp32", "trt", "fp32"),
    Target("trt-fp16", "trt", "fp16", "fp16"),
    Target("trt-int8", "trt", "int8", "int8.trt"),
    # OpenVINO (optional extra): IR converted from the FP32 export, and from calibrate's CPU-flavour Q/DQ model
    Target("ov-fp32", "ov", "fp32"),
    Target("ov-fp16", "ov", "fp16"),  # the FP32 IR run with FP16 inference precision (CPUs with native FP16)
    Target("ov-int8", "ov", "int8", "int8.cpu"),
)
BY_NAME: dict[str, Target] = {t.name: t for t in TABLE}
TARGETS: tuple[str, ...] = tuple(BY_NAME)
TRT_TARGETS: tuple[str, ...] = tuple(t.name for t in TABLE if t.needs_build)
CALIB_TARGETS: tuple[str, ...] = tuple(t.name for t in TABLE if t.needs_calibrate)
OV_TARGETS: tuple[str, ...] = tuple(t.name for t in TABLE if t.runtime == "ov")


def parse_target(name: str) -> Target:
    """The table row of `name` (ConfigError for a name not in it)."""
    if name not in BY_NAME:
        raise ConfigError(f"unknown --target {name!r}", f"choose from {', '.join(TARGETS)}")
    return BY_NAME[name]
