"""Which TensorRT this machine has, and what that means for the calibrate stage (no torch, no TensorRT needed)."""

from __future__ import annotations

import importlib.util

from lfcc_pipeline.core.targets import parse_target
from lfcc_pipeline.runtimes.trt_plan import major_version


def tensorrt_version() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        import tensorrt

        return str(tensorrt.__version__)
    except Exception:  # a broken install (missing libnvinfer) counts as absent
        return None


def needs_calibration(targets) -> bool:
    """Whether `targets` need calibrate's models here: INT8/FP16 ones do; trt-fp16 only on TensorRT 11
    (strongly typed: an FP16 ONNX), as TensorRT 8.6/10 build FP16 from the FP32 export with a builder flag."""
    calib = {t for t in targets if parse_target(t).needs_calibrate}
    if calib - {"trt-fp16"}:
        return True
    if calib:
        version = tensorrt_version()
        return version is None or major_version(version) >= 11
    return False
