"""End to end with timm's tiny test models on the bundled fashion-mini data."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import FAST, ROOT, cli

pytestmark = pytest.mark.slow


def _manifest(run):
    return json.loads((run / "manifest.json").read_text())["stages"]


def test_report_has_teacher_and_student_rows_per_target(finished_run):
    report = json.loads((finished_run / "bench" / "report.json").read_text())
    pairs = {(r["model"], r["target"]) for r in report["rows"]}
    assert pairs == {(m, t) for m in ("teacher", "student") for t in ("torch", "ort-fp32")}
    for r in report["rows"]:
        assert "error" not in r
        assert 0 <= r["top1"] <= 100 and r["top5"] >= r["top1"]
        assert r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]
        assert r["throughput_ips"] > 0 and r["size_mb"] > 0 and r["params_m"] > 0
    teacher_torch = next(r for r in report["rows"] if r["model"] == "teacher" and r["target"] == "torch")
    assert teacher_torch["agreement"] == 100.0 and teacher_torch["speedup_vs_teacher"] == 1.0
    assert (finished_run / "bench" / "report.md").read_text().count("| student |") == 2
    assert (finished_run / "bench" / "report.png").read_bytes()[:4] == b"\x89PNG"
    parity = json.loads((finished_run / "export" / "parity.json").read_text())
    assert parity["student"]["ok"] and parity["student"]["max_abs_diff"] < 1e-3


def test_manifest_records_every_stage(finished_run):
    stages = _manifest(finished_run)
    assert list(stages) == ["teacher", "distill", "export", "bench", "bundle"]
    for name, entry in stages.items():
        assert entry["status"] == "done" and entry["fingerprint"] and entry["seconds"] >= 0, name
        for rel, digest in entry["outputs"].items():
            assert (finished_run / rel).is_file() and len(digest) == 64
    assert set(stages["distill"]["inputs"]) == {"teacher"}


def test_rerun_skips_every_stage(run_copy):
    t0 = time.time()
    r = cli("run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd",
            "--target", "torch", "--target", "ort-fp32", "--out", str(run_copy), *FAST)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "skipped (up to date): teacher, distill, export, bench, bundle" in r.stderr
    assert "| student |" in r.stdout  # the table is printed again
    assert time.time() - t0 < 60


def test_config_yaml_reproduces_the_run(run_copy):
    """Every run writes config.yaml; `run --config` on it (here: after moving the run) skips every stage."""
    import yaml

    f = run_copy / "config.yaml"
    written = yaml.safe_load(f.read_text())
    assert written["train"]["epochs"] == 1 and written["distill"]["method"] == "kd"
    assert written["bench"]["targets"] == ["torch", "ort-fp32"] and "lfcc" in written["distill"]["methods"]
    written["out"] = str(run_copy)  # the run was copied: point the file at the copy
    f.write_text(yaml.safe_dump(written))
    r = cli("run", "--config", str(f))
    assert r.returncode == 0, r.stderr
    assert "skipped (up to date): teacher, distill, export, bench, bundle" in r.stderr


def test_changed_option_reruns_that_stage_and_after(run_copy):
    before = _manifest(run_copy)
    args = [a if a != "1" or i != FAST.index("--epochs") + 1 else "2" for i, a in enumerate(FAST)]
    r = cli("run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd",
            "--target", "torch", "--target", "ort-fp32", "--out", str(run_copy), *args)  # fmt: skip
    assert r.returncode == 0, r.stderr
    after = _manifest(run_copy)
    assert after["teacher"]["started"] == before["teacher"]["started"]
    for stage in ("distill", "export", "bench"):
        assert after[stage]["fingerprint"] != before[stage]["fingerprint"], stage


def test_changed_target_reruns_only_bench(run_copy):
    r = cli("run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd",
            "--target", "ort-fp32", "--out", str(run_copy), *FAST)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "skipped (up to date): teacher, distill, export" in r.stderr
    rows = json.loads((run_copy / "bench" / "report.json").read_text())["rows"]
    assert {r["target"] for r in rows} == {"ort-fp32"}


def test_edited_artifact_is_detected_and_rebuilt(run_copy):
    onnx = run_copy / "export" / "student.onnx"
    onnx.write_bytes(onnx.read_bytes()[:1000])  # truncated
    r = cli("run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd",
            "--target", "torch", "--target", "ort-fp32", "--out", str(run_copy), *FAST)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "export/student.onnx changed since it was written; rerunning" in r.stderr
    assert _manifest(run_copy)["export"]["status"] == "done"


def test_stop_after_and_stage_commands(tmp_path):
    out = tmp_path / "run"
    r = cli("run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "none",
            "--stop-after", "teacher", "--out", str(out), *FAST)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert list(_manifest(out)) == ["teacher"]
    r = cli("export", "--teacher", "test_vit", "--student", "test_resnet", "--method", "none",
            "--out", str(out), *FAST)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert list(_manifest(out)) == ["teacher", "distill", "export"]
    assert (out / "export" / "student.onnx").is_file() and not (out / "bench").exists()


def test_kill_during_distill_then_resume(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd", "--target", "ort-fp32",
            "--out", str(out), *FAST, "--epochs", "3", "--ckpt-every", "10"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "lfcc_pipeline", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    ckpt = out / "student" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), "no distill checkpoint appeared"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _manifest(out)["distill"]["status"] == "running"  # never marked done
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stderr and "skipped (up to date): teacher" in r.stderr
    assert _manifest(out)["distill"]["status"] == "done"


def test_issue_example_command(tmp_path):
    """The acceptance command from the spine issue, plus --bench-iters 10 to keep CI short."""
    out = tmp_path / "demo"
    r = cli("run", "--teacher", "test_vit", "--student", "test_resnet", "--data", "fashion-mini", "--target",
            "ort-fp32", "--epochs", "1", "--teacher-epochs", "1", "--img-size", "64", "--out", str(out),
            "--bench-iters", "10")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads((out / "bench" / "report.json").read_text())["rows"]
    assert {(x["model"], x["target"]) for x in rows} == {("teacher", "ort-fp32"), ("student", "ort-fp32")}


def test_force_reruns_every_stage(run_copy):
    before = _manifest(run_copy)
    r = cli("run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd",
            "--target", "torch", "--target", "ort-fp32", "--out", str(run_copy), *FAST, "--force")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "skipped" not in r.stderr
    after = _manifest(run_copy)
    for stage in before:
        assert after[stage]["status"] == "done" and after[stage]["started"] != before[stage]["started"], stage


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_targets_prepare_here_and_stop_before_the_build(run_copy):
    """What the 'TensorRT missing' message advises works: --stop-after calibrate needs no TensorRT."""
    args = ["run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd", "--target", "trt-int8",
            "--target", "trt-fp16", "--out", str(run_copy), *FAST]  # fmt: skip
    r = cli(*args)
    assert r.returncode == 2 and "needs TensorRT" in r.stderr and "--stop-after calibrate" in r.stderr
    assert "Traceback" not in r.stderr and "calibrate" not in _manifest(run_copy)  # refused before any work
    r = cli(*args, "--stop-after", "calibrate")
    assert r.returncode == 0, r.stderr
    assert (run_copy / "calib" / "student.int8.trt.onnx").is_file() and (run_copy / "calib" / "calib.npz").is_file()
    assert list(_manifest(run_copy))[-1] == "calibrate"


def test_no_rebuild_stops_on_an_edited_artifact_and_keeps_it(run_copy):
    onnx = run_copy / "export" / "student.onnx"
    onnx.write_bytes(onnx.read_bytes()[:1000])  # truncated
    before = _manifest(run_copy)
    r = cli("run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd",
            "--target", "torch", "--target", "ort-fp32", "--out", str(run_copy), *FAST, "--no-rebuild")  # fmt: skip
    assert r.returncode != 0 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "export/student.onnx changed since it was written" in last and last.startswith("error:")
    assert _manifest(run_copy)["export"] == before["export"]  # nothing rerun, nothing rewritten
    assert len(onnx.read_bytes()) == 1000
