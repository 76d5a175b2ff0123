"""Whether a deployment target (core/targets.py) can run on this machine, and what it needs here."""

from __future__ import annotations

import importlib.util

import torch

from lfcc_pipeline.core.errors import TargetUnavailable
from lfcc_pipeline.core.targets import TARGETS, parse_target
from lfcc_pipeline.runtimes import ov_install
from lfcc_pipeline.runtimes.ort_providers import ort_providers
from lfcc_pipeline.runtimes.trt_install import tensorrt_version


def unavailable_reason(name: str) -> str | None:
    """None if `name` can run on this machine, else one line saying what is missing and what to do."""
    target = parse_target(name)
    if target.runtime == "ort" and importlib.util.find_spec("onnxruntime") is None:
        return f"target {name} needs ONNX Runtime; pip install onnxruntime (or onnxruntime-gpu)"
    if target.runtime == "ov":
        return ov_install.unavailable_reason(name)
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


def target_status() -> dict[str, str | None]:
    """target -> None if it runs here, else the reason it cannot."""
    return {t: unavailable_reason(t) for t in TARGETS}


def check_runnable(targets, ort_provider: str) -> None:
    """TargetUnavailable for the first of `targets` that cannot run here, or a missing ONNX Runtime provider."""
    for t in targets:
        reason = unavailable_reason(t)
        if reason:
            raise TargetUnavailable(reason)
    if any(parse_target(t).runtime == "ort" for t in targets):
        ort_providers(ort_provider)
