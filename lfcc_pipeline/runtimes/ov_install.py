"""Which OpenVINO this machine has, and whether its CPU runs a precision natively (no torch needed).

OpenVINO is an optional extra (`pip install "lfcc-pipeline[openvino]"`); everything here answers
without it and says how to get it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

from lfcc_pipeline.core.errors import TargetUnavailable

INSTALL_HINT = 'pip install "lfcc-pipeline[openvino]" (OpenVINO and NNCF)'


def openvino_version() -> str | None:
    """The installed openvino version whose Python API imports, else None."""
    if importlib.util.find_spec("openvino") is None:
        return None
    try:
        return importlib.metadata.version("openvino")
    except importlib.metadata.PackageNotFoundError:
        return None


def nncf_version() -> str | None:
    try:
        return importlib.metadata.version("nncf") if importlib.util.find_spec("nncf") else None
    except importlib.metadata.PackageNotFoundError:
        return None


def import_openvino():
    """The openvino module, or TargetUnavailable saying how to install it."""
    try:
        import openvino
    except ImportError as e:
        raise TargetUnavailable("OpenVINO is not installed", INSTALL_HINT) from e
    return openvino


def cpu_capabilities() -> list[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES of the CPU device (e.g. FP32, BF16, FP16, INT8), [] without OpenVINO."""
    if openvino_version() is None:
        return []
    ov = import_openvino()
    return [str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def fp16_reason(capabilities: list[str]) -> str | None:
    """None where the CPU computes FP16 natively (AVX512-FP16 / AMX-FP16: OpenVINO lists FP16), else why not."""
    if "FP16" in capabilities:
        return None
    return (
        f"target ov-fp16 needs a CPU with native FP16 arithmetic (AVX512-FP16 or AMX-FP16); OpenVINO reports "
        f"{', '.join(capabilities) or 'no capabilities'} for this one; use ov-fp32 or ov-int8 here"
    )


def unavailable_reason(name: str) -> str | None:
    """None if the OpenVINO target `name` runs here, else one line saying what is missing and what to do."""
    if openvino_version() is None:
        return f"target {name} needs OpenVINO; {INSTALL_HINT}"
    if name == "ov-fp16":
        return fp16_reason(cpu_capabilities())
    return None
