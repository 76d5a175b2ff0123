"""Which autocast dtype `--precision` means on this device: on CUDA bf16 where supported (else fp16
with a gradient scaler); on CPUs bf16 where the CPU computes it natively (x86 AVX512-BF16 or AMX,
Arm BF16), fp32 elsewhere (emulated bf16 would be slower than fp32)."""

from __future__ import annotations

from pathlib import Path

import torch

CPUINFO = Path("/proc/cpuinfo")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 flags; Arm's "Features" line says bf16
NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def cpu_bf16_flags(cpuinfo: Path = CPUINFO) -> list[str]:
    """The native-bf16 features the first CPU in /proc/cpuinfo lists ([] where none, or no such file)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags = set(value.split())
            return [f for f in NATIVE_BF16_FLAGS if f in flags]
    return []


def choose_precision(precision: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """(autocast dtype, None for full fp32; why, for the log line) for `precision` on `device`."""
    if precision == "fp32":
        return None, "--precision fp32"
    if precision in ("bf16", "fp16"):
        return (torch.bfloat16 if precision == "bf16" else torch.float16), f"--precision {precision}"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "auto: this GPU supports bf16"
        return torch.float16, "auto: this GPU lacks bf16 (fp16 with a gradient scaler)"
    if device.type == "cpu":
        flags = cpu_bf16_flags()
        if flags:
            return torch.bfloat16, f"auto: this CPU computes bf16 natively ({', '.join(flags)})"
        return None, "auto: this CPU has no native bf16 (no AVX512-BF16, AMX or Arm BF16)"
    return None, f"auto: fp32 on {device.type}"


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device` (None: full fp32)."""
    return choose_precision(precision, device)[0]
