"""`run --target ort-int8 --target ov-int8 --target ov-fp32` on fashion-mini: OpenVINO rows in the report, IR
artifacts with fingerprints, the bundle's OpenVINO example, and `bench --model` on IR files.

Needs the openvino extra (`make test-openvino`); skipped without it."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import CALIB_BASE, cli

pytest.importorskip("openvino", reason='needs the openvino extra: pip install "lfcc-pipeline[openvino]"')
pytestmark = [pytest.mark.slow, pytest.mark.openvino]
TARGETS = ["--target", "ort-fp32", "--target", "ort-int8", "--target", "ov-fp32", "--target", "ov-int8"]


@pytest.fixture(scope="module")
def ov_run(finished_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("ov") / "run"
    shutil.copytree(finished_run, out)
    r = cli("run", *CALIB_BASE, *TARGETS, "--threads", "2", "--bench-batch", "8", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_report_has_openvino_rows_with_drops(ov_run):
    rows = {(r["model"], r["target"]): r for r in json.loads((ov_run / "bench" / "report.json").read_text())["rows"]}
    for role in ("teacher", "student"):
        for target in ("ort-int8", "ov-fp32", "ov-int8"):
            r = rows[(role, target)]
            assert "error" not in r, r
            assert r["top1"] is not None and r["agreement"] is not None
            assert r["latency_ms"]["p50"] > 0 and r["throughput_ips"] > 0 and r["batch_size"] == 8
        assert rows[(role, "ov-fp32")]["runtime"] == "ov"
        assert "top1_drop" in rows[(role, "ov-int8")]
    # the FP32 IR is the FP32 model: same top-1 as ONNX Runtime's FP32 row
    assert rows[("student", "ov-fp32")]["top1"] == rows[("student", "ort-fp32")]["top1"]


def test_ir_files_are_fingerprinted_artifacts(ov_run):
    manifest = json.loads((ov_run / "manifest.json").read_text())["stages"]
    for role in ("teacher", "student"):
        assert f"export/{role}.ov.xml" in manifest["export"]["outputs"]
        assert f"export/{role}.ov.bin" in manifest["export"]["outputs"]
        assert f"calib/{role}.int8.ov.xml" in manifest["calibrate"]["outputs"]
    acc = json.loads((ov_run / "calib" / "accuracy.json").read_text())
    assert "int8.ov" in acc["student"] and acc["gate"]["max_int8_drop"] is not None
    r = cli("run", *CALIB_BASE, *TARGETS, "--threads", "2", "--bench-batch", "8", "--out", str(ov_run),
            "--stop-after", "calibrate")  # fmt: skip
    assert r.returncode == 0 and "skipped (up to date): teacher, distill, export, calibrate" in r.stderr, r.stderr


def test_bundle_openvino_example_prints_what_predict_prints(ov_run, tmp_path):
    b = tmp_path / "bundle"
    shutil.copytree(ov_run / "bundle", b)
    for name in ("student.xml", "student.bin", "student.int8.xml", "student.int8.bin"):
        assert (b / name).is_file()
    readme = (b / "README.md").read_text()
    code = readme.split("```python\n")[2].split("```")[0]
    assert "import json, numpy as np, openvino as ov" in code and "onnxruntime" not in code
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(b / "image.jpg")
    (b / "snippet.py").write_text(code)
    ran = subprocess.run([sys.executable, "snippet.py"], cwd=b, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    pred = cli("predict", "--bundle", str(b), str(b / "image.jpg"))
    assert pred.returncode == 0, pred.stderr
    assert pred.stdout.split(": ", 1)[1].split(" (")[0] == ran.stdout.strip()


def test_bench_model_on_ir_files(ov_run, tmp_path):
    out = tmp_path / "report"
    r = cli("bench", "--model", str(ov_run / "export" / "student.ov.xml"),
            "--model", str(ov_run / "calib" / "student.int8.ov.xml"),
            "--model", str(ov_run / "export" / "teacher.ov.xml"),
            "--data", "fashion-mini", "--bench-max-images", "128", "--bench-iters", "5", "--threads", "2",
            "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = {(x["model"], x["target"]): x for x in json.loads((out / "report.json").read_text())["rows"]}
    assert set(rows) == {("student", "ov-fp32"), ("student", "ov-int8"), ("teacher", "ov-fp32")}
    assert rows[("student", "ov-int8")]["agreement"] is not None and "top1_drop" in rows[("student", "ov-int8")]
