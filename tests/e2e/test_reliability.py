"""Fault injection: kill -9 in every stage, two runs on one directory, NaN losses, a full disk.

After every fault the run directory must hold no half-written artifact under a real name, the
manifest must never call an unfinished stage done, and rerunning the same command must finish.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import FAST, ROOT, cli, record, verify_artifacts

pytestmark = pytest.mark.slow
ARGS = ["run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd", "--target", "torch",
        "--target", "ort-fp32", *FAST, "--epochs", "2", "--teacher-epochs", "2", "--ckpt-every", "10"]  # fmt: skip


def _stages(run):
    try:
        return json.loads((run / "manifest.json").read_text())["stages"]
    except (OSError, json.JSONDecodeError, KeyError):
        return {}


def _start(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "lfcc_pipeline", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip


def _wait_for(pred, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if pred():
            return True
        time.sleep(0.01)
    return False


def _no_temporaries(run):
    return [p for p in run.rglob(".*.tmp-*")]


@pytest.mark.parametrize("stage", ["teacher", "distill", "export", "calibrate", "bench"])
def test_kill_9_in_a_stage_then_rerun(stage, tmp_path):
    run = tmp_path / "run"
    extra = ["--target", "ort-int8", "--calib-size", "128"] if stage == "calibrate" else []
    args = [*ARGS, *extra, "--out", str(run)]
    proc = _start(args)
    ckpt = {"teacher": run / "teacher/checkpoints/last.pt", "distill": run / "student/checkpoints/last.pt"}.get(stage)

    def in_stage():
        running = _stages(run).get(stage, {}).get("status") == "running"
        return running and (ckpt is None or ckpt.exists())

    caught = _wait_for(in_stage, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert caught, f"the run never reached stage {stage}"
    record("faults injected")
    assert _stages(run)[stage]["status"] != "done"
    verify_artifacts(run)  # whatever is recorded as done is intact
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    if ckpt is not None:
        assert "resuming from" in r.stderr
    assert all(e["status"] == "done" for e in _stages(run).values())
    assert verify_artifacts(run) >= 9
    assert _no_temporaries(run) == []


def test_a_second_run_on_the_same_directory_is_refused(tmp_path):
    run = tmp_path / "run"
    first = _start([*ARGS, "--out", str(run)])
    assert _wait_for(lambda: _stages(run).get("teacher", {}).get("status") == "running", first)
    second = cli(*ARGS, "--out", str(run))
    record("faults injected")
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "another lfcc-pipeline process (pid" in lines[0] and "--out" in lines[0]
    assert first.wait(timeout=600) == 0, first.stderr.read()
    verify_artifacts(run)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    r = cli(
        *ARGS, "--out", str(run), "--lr", "1e6", "--warmup-epochs", "0", "--ckpt-every", "1", "--stop-after", "teacher"
    )
    record("faults injected")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert "NaN/Inf at step" in lines[-1] and "--grad-clip" in lines[-1] and "learning rate" in lines[-1]
    assert "Traceback" not in r.stderr
    state = torch.load(run / "teacher/checkpoints/last.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert _stages(run)["teacher"]["status"] == "failed"


def test_grad_clip_keeps_a_high_learning_rate_finite(tmp_path):
    r = cli(*ARGS, "--out", str(tmp_path / "run"), "--lr", "0.05", "--grad-clip", "1.0", "--stop-after", "teacher")
    assert r.returncode == 0, r.stderr


def _limit_file_size(limit_bytes):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


@pytest.mark.parametrize("stage", ["distill", "export", "calibrate"])
def test_disk_full_fails_clearly_and_keeps_previous_artifacts(stage, finished_run, tmp_path):
    """RLIMIT_FSIZE makes writes past 200 kB fail (EFBIG) like a full disk would (ENOSPC), in a stage
    writing through the pipeline's atomic files (distill's checkpoint), torch's ONNX exporter, or the
    quantizers' own temporary files (calibrate)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = verify_artifacts(run)
    args = ["run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd", "--target", "torch",
            "--target", "ort-fp32", *FAST, "--out", str(run)]  # fmt: skip
    if stage == "distill":
        args[args.index("--epochs") + 1] = "2"  # distill must rerun and write its 1.2 MB checkpoint
    elif stage == "export":
        args += ["--opset", "18"]  # export reruns; the teacher ONNX is larger than the limit
    else:  # a small calib.npz fits; the quantizer's own copy of the ONNX (1.3 MB) does not
        args += ["--target", "ort-int8", "--calib-size", "128"]
    r = subprocess.run([sys.executable, "-m", "lfcc_pipeline", *args], cwd=ROOT, capture_output=True, text=True,
                       preexec_fn=_limit_file_size(200_000), timeout=600)  # fmt: skip
    record("faults injected")
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: cannot write") and "disk space" in line, line
    assert "Traceback" not in r.stderr
    assert verify_artifacts(run) == before  # the finished run before the fault is still whole
    assert _no_temporaries(run) == []
    r = cli(*args)  # with room again, the same command finishes
    assert r.returncode == 0, r.stderr


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    r = cli(*ARGS, "--out", str(blocker / "run"))
    record("faults injected")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "cannot create run directory" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0 or sys.platform != "linux", reason="mounting a tmpfs needs root on Linux")
def test_tiny_tmpfs_fills_up(finished_run, tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        r = cli(*ARGS, "--out", str(mnt / "run"), "--stop-after", "teacher")
        record("faults injected")
        assert r.returncode == 2 and "No space left" in r.stderr and "disk space" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        assert _no_temporaries(mnt / "run") == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
