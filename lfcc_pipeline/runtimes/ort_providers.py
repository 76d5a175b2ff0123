"""ONNX Runtime execution providers for --ort-provider, checked against this install (no torch)."""

from __future__ import annotations

from lfcc_pipeline.core.errors import ConfigError, TargetUnavailable

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def ort_providers(name: str) -> list[str]:
    """ONNX Runtime provider list for --ort-provider (with CPU as the fallback), checked against this install."""
    import onnxruntime as ort

    if name not in PROVIDERS:
        raise ConfigError(f"unknown --ort-provider {name!r}", f"choose one of {', '.join(PROVIDERS)}")
    wanted = PROVIDERS[name]
    available = ort.get_available_providers()
    if wanted not in available:
        raise TargetUnavailable(
            f"ONNX Runtime here has no {wanted} (available: {', '.join(available)})",
            "install onnxruntime-gpu (CUDA) and TensorRT (tensorrt provider), or use --ort-provider cpu",
        )
    return [wanted] if wanted == "CPUExecutionProvider" else [wanted, "CPUExecutionProvider"]
