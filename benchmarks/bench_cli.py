"""What the INT8 benchmark scripts share: the CLI run offline in a subprocess, and a random nominal teacher
(`--method none` ignores the teacher; the pipeline still wants one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    """`lfcc-pipeline ARGS` with HF_HUB_OFFLINE=1; exits with the command's last stderr lines on failure."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "lfcc_pipeline", *args], cwd=ROOT, capture_output=True, text=True,
                       env=env)  # fmt: skip
    if r.returncode != 0:
        sys.exit(f"lfcc-pipeline {' '.join(args)} failed:\n{r.stderr[-3000:]}")
    return r


def untrained_teacher(work: Path) -> Path:
    """Random test_resnet weights (seed 0) in work/, made once."""
    import timm
    import torch
    from safetensors.torch import save_file

    path = work / "test_resnet_random.safetensors"
    if not path.is_file():
        torch.manual_seed(0)
        save_file(timm.create_model("test_resnet", pretrained=False, num_classes=10).state_dict(), str(path))
    return path


def student_only_args(work: Path, student: str, data: str, img_size: int, epochs: int) -> list[str]:
    """A student trained from scratch alone (`--method none`), as both INT8 benchmarks train it."""
    return ["--teacher", "test_resnet", "--teacher-weights", str(untrained_teacher(work)), "--teacher-epochs", "0",
            "--student", student, "--method", "none", "--data", data, "--img-size", str(img_size),
            "--epochs", str(epochs), "--batch-size", "128", "--lr", "2e-3", "--warmup-epochs", "0.2",
            "--no-pretrained", "--no-calib-teacher"]  # fmt: skip
