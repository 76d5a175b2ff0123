"""TensorBoard event files of a whole run (on by default), read back with TensorBoard's EventAccumulator;
a kill -9 and resume leaves one value per logging step."""

import os
import signal
import subprocess
import sys
import time

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import FAST, ROOT, cli

pytestmark = pytest.mark.slow


def _events(logdir) -> EventAccumulator:
    ea = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0, "images": 0})
    ea.Reload()
    return ea


def _steps(logdir, tag) -> list[int]:
    return [e.step for e in _events(logdir).Scalars(tag)]


def test_a_run_writes_training_curves_and_the_report(finished_run):
    for stage in ("teacher", "distill"):  # FAST: 1280 images / 64 = 20 steps, 1 epoch: one logging step
        tags = _events(finished_run / "tb" / stage).Tags()["scalars"]
        assert {"train/loss", "train/loss_ce", "train/lr", "perf/images_per_s", "perf/data_wait_fraction",
                "val/top1"} <= set(tags), stage  # fmt: skip
        assert _steps(finished_run / "tb" / stage, "train/loss") == [20], stage
    assert "train/loss_kd" in _events(finished_run / "tb" / "distill").Tags()["scalars"]
    bench = _events(finished_run / "tb" / "bench")
    text = bench.Tensors("bench/report/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| student |" in text and "| teacher |" in text
    image = bench.Images("bench/report")[0]
    assert image.encoded_image_string[:4] == b"\x89PNG" and image.width > 100


def test_kill_9_then_resume_continues_the_same_curves(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd", "--target", "torch",
            "--out", str(out), *FAST, "--epochs", "2", "--batch-size", "16", "--ckpt-every", "30",
            "--stop-after", "distill"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "lfcc_pipeline", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    ckpt = out / "student" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert ckpt.exists(), "no distill checkpoint appeared"
    time.sleep(1.0)  # let it log a step or two beyond the checkpoint before the kill
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stderr
    # 1280 images / 16 = 80 steps per epoch, logged every 20: each logging step exactly once
    assert _steps(out / "tb" / "distill", "train/loss") == list(range(20, 161, 20))
    assert _steps(out / "tb" / "distill", "val/top1") == [80, 160]
