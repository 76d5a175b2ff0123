"""Shared fixtures: offline hub, small fast settings, a finished tiny run to inspect."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.pop("LFCC_PROGRESS", None)

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "--data", "fashion-mini", "--img-size", "32", "--epochs", "1", "--teacher-epochs", "1",
    "--bench-iters", "5", "--bench-warmup", "2", "--bench-max-images", "256", "--batch-size", "64",
    "--train-subset", "1280",
]  # fmt: skip


def cli(
    *args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run `python -m lfcc_pipeline ARGS` in a subprocess (what a user types), capturing output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lfcc_pipeline", *args],
        cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout, env=full_env,
    )  # fmt: skip


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A complete kd run with the tiny timm models (read-only: copy it before changing anything)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    r = cli("run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd",
            "--target", "torch", "--target", "ort-fp32", "--out", str(out), *FAST)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


# The calibration issue's acceptance command (`run --teacher test_vit --student test_resnet --data
# fashion-mini --target ort-int8 --target ort-fp16 ...`, --method kd for speed) at the fast settings.
CALIB_BASE = ["--teacher", "test_vit", "--student", "test_resnet", "--method", "kd", *FAST]
CALIB_ARGS = [*CALIB_BASE, "--target", "ort-int8", "--target", "ort-fp16"]


@pytest.fixture(scope="session")
def calib_run(finished_run, tmp_path_factory) -> Path:
    """A copy of the finished tiny run, calibrated and benchmarked on ort-int8/ort-fp16 (read-only)."""
    out = tmp_path_factory.mktemp("calib") / "run"
    shutil.copytree(finished_run, out)
    r = cli("run", *CALIB_ARGS, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "skipped (up to date): teacher, distill, export" in r.stderr
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(finished_run, dst)
    return dst


# -- reliability counters (printed at the end of the test run, listed in the README) ----------------
RELIABILITY = {"faults injected": 0, "bad inputs tried": 0, "artifacts lost": 0}


def record(kind: str, n: int = 1) -> None:
    RELIABILITY[kind] += n


def verify_artifacts(run_dir: Path) -> int:
    """Every output the manifest records as done still has its recorded hash; returns how many were checked."""
    import json

    from lfcc_pipeline.pipeline.manifest import Manifest

    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    manifest = Manifest(run_dir)
    checked = 0
    for name, entry in stages.items():
        if entry.get("status") == "done":
            problem = manifest.check_outputs(name)
            if problem is not None:
                record("artifacts lost")
            assert problem is None, f"{name}: {problem}"
            checked += len(entry["outputs"])
    return checked


def pytest_terminal_summary(terminalreporter):
    if RELIABILITY["faults injected"] or RELIABILITY["bad inputs tried"]:
        terminalreporter.write_line("reliability: " + ", ".join(f"{v} {k}" for k, v in RELIABILITY.items()))
