"""The runner's device choice (--device); the machine probe itself is runtimes/probe.py."""

from __future__ import annotations

import os

import torch

from lfcc_pipeline.core.errors import TargetUnavailable


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TargetUnavailable("--device cuda was given but no CUDA GPU is visible", "use --device cpu or auto")
    if name == "cuda":  # under torchrun each process drives its LOCAL_RANK-th GPU
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)
