"""Environment probe: versions, devices, ONNX Runtime providers, TensorRT (for `doctor` and every report)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

import torch

from lfcc_pipeline import __version__
from lfcc_pipeline.runtimes.ov_install import cpu_capabilities, nncf_version, openvino_version
from lfcc_pipeline.runtimes.trt_install import tensorrt_version


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ort_providers() -> list[str]:
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except ImportError:
        return []


def jetson_power_mode() -> str | None:
    """The nvpmodel power mode on a Jetson board, where the tool is present."""
    import shutil
    import subprocess

    if shutil.which("nvpmodel") is None:
        return None
    try:
        out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return " ".join(out.split()) or None


def probe() -> dict[str, Any]:
    """What this machine has, for `doctor` and for every report's env block."""
    ort_dists = [d for d in ("onnxruntime", "onnxruntime-gpu") if _version(d)]
    env: dict[str, Any] = {
        "lfcc_pipeline": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "timm": _version("timm"),
        "onnx": _version("onnx"),
        "onnxruntime": {d: _version(d) for d in ort_dists},
        "ort_providers": ort_providers(),
        "tensorrt": tensorrt_version(),
        "modelopt": _version("nvidia-modelopt"),
        "openvino": openvino_version(),
        "nncf": nncf_version(),
    }
    if env["openvino"]:
        env["openvino_cpu"] = cpu_capabilities()
    if len(ort_dists) > 1:
        env["warning"] = "onnxruntime and onnxruntime-gpu are both installed; uninstall one (only CPU may work)"
    if env["cuda_available"]:
        env["driver"] = nvidia_driver()
    power = jetson_power_mode()
    if power:
        env["jetson_power_mode"] = power
    return env


def nvidia_driver() -> str | None:
    """The NVIDIA driver version from nvidia-smi (absent on Jetson, whose JetPack names it instead)."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None
