"""benchmarks/gpu_check.py --dry-run: every section's code path on CPU (tiny models, 32 px), one results file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "gpu_check.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (result,) = json.loads(out.read_text()).values()
    sections = result["sections"]
    assert set(sections) == {"tests", "throughput", "data", "distill"}
    assert not [name for name, s in sections.items() if "error" in s], sections
    counts = sections["tests"]["counts"]
    assert counts.get("skipped", 0) + counts.get("passed", 0) >= 1 and not counts.get("failed")
    rows = sections["throughput"]["rows"]
    assert [r["method"] for r in rows] == ["kd", "lfcc"] and all(r["images_per_s"] > 0 for r in rows)
    assert sections["throughput"]["lfcc_images_per_s"] == rows[1]["images_per_s"]
    assert [r["path"].split(",")[0] for r in sections["data"]["rows"]] == ["imagefolder", "webdataset"]
    assert all(r["images_per_s"] > 0 for r in sections["data"]["rows"])
    distill = sections["distill"]
    assert distill["stages"]["export"]["action"] == "ran" and distill["parity"]["student"]["ok"]
    assert {(r["model"], r["target"]) for r in distill["bench_rows"]} == {
        ("teacher", "ort-fp32"),
        ("student", "ort-fp32"),
    }
    assert "LFCC test_vit -> test_resnet" in r.stdout


def test_a_failing_section_is_recorded_and_the_rest_run(tmp_path):
    """A section that raises records its error; the others still run; the exit code says one failed."""
    out = tmp_path / "gpu_check.json"
    env = {"LFCC_GPU_CHECK_FAIL": "data"}
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run", "--only",
                        "data,throughput", "--out", str(out)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env={**os.environ, **env})  # fmt: skip
    assert r.returncode == 1
    (result,) = json.loads(out.read_text()).values()
    assert "LFCC_GPU_CHECK_FAIL" in result["sections"]["data"]["error"]
    assert "error" not in result["sections"]["throughput"]
