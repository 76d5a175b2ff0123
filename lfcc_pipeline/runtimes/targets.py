"""Deployment targets: which runtime and precision each names, and whether it can run here."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from lfcc_pipeline.core.config import TARGETS
from lfcc_pipeline.core.errors import ConfigError


@dataclass(frozen=True)
class Target:
    name: str
    runtime: str  # torch | ort | trt
    precision: str  # fp32 | fp16 | int8


def parse_target(name: str) -> Target:
    if name not in TARGETS:
        raise ConfigError(f"unknown --target {name!r}", f"choose from {', '.join(TARGETS)}")
    if name == "torch":
        return Target(name, "torch", "fp32")
    runtime, precision = name.split("-")
    return Target(name, runtime, precision)


def tensorrt_version() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        import tensorrt

        return str(tensorrt.__version__)
    except Exception:  # a broken install (missing libnvinfer) counts as absent
        return None


def unavailable_reason(name: str) -> str | None:
    """None if `name` can run on this machine, else one line saying what is missing and what to do."""
    target = parse_target(name)
    if target.runtime == "ort" and importlib.util.find_spec("onnxruntime") is None:
        return f"target {name} needs ONNX Runtime; pip install onnxruntime (or onnxruntime-gpu)"
    if target.runtime == "trt":
        missing = []
        if tensorrt_version() is None:
            missing.append("TensorRT is not installed")
        if not torch.cuda.is_available():
            missing.append("no CUDA GPU is visible")
        if missing:
            return (
                f"target {name} needs TensorRT and a CUDA GPU ({', '.join(missing)}); on a GPU machine pip install "
                "tensorrt (Jetson: JetPack's python3-libnvinfer), or run with --stop-after calibrate here and "
                "build the engine on the target device (lfcc-pipeline build --onnx ... there)"
            )
    return None
