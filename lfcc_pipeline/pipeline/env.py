"""Environment probe: versions, devices, ONNX Runtime providers, TensorRT, runnable targets."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

import torch

from lfcc_pipeline import __version__
from lfcc_pipeline.core.config import TARGETS
from lfcc_pipeline.core.errors import TargetUnavailable


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
    from lfcc_pipeline.runtimes.targets import tensorrt_version

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
    }
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


def target_status() -> dict[str, str | None]:
    """target -> None if it runs here, else the reason it cannot."""
    from lfcc_pipeline.runtimes.targets import unavailable_reason

    return {t: unavailable_reason(t) for t in TARGETS}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TargetUnavailable("--device cuda was given but no CUDA GPU is visible", "use --device cpu or auto")
    if name == "cuda":  # under torchrun each process drives its LOCAL_RANK-th GPU
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)
