"""The calibrate stage and the ort-int8/ort-fp16 targets end to end, on trained tiny models."""

import json
import shutil

import numpy as np
import onnx
import pytest

from lfcc_pipeline.calib import checks, graph
from lfcc_pipeline.calib.calibset import CalibSet, load_calibset, model_inputs, save_calibset
from lfcc_pipeline.calib.fp16 import FP32_OPS
from lfcc_pipeline.core.preprocess import Preprocess
from lfcc_pipeline.data.sources import load_dataset
from lfcc_pipeline.data.specs import parse_data_spec
from lfcc_pipeline.data.transforms import Normalization, to_float
from tests.conftest import CALIB_ARGS, CALIB_BASE, cli

pytestmark = pytest.mark.slow

BASE, ARGS = CALIB_BASE, CALIB_ARGS
FLAVOURS = ("int8.trt", "int8.cpu", "fp16")


def _manifest(run):
    return json.loads((run / "manifest.json").read_text())["stages"]


@pytest.fixture
def calib_copy(calib_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(calib_run, dst)
    return dst


def test_report_has_int8_fp16_and_tensorrt_qdq_rows(calib_run):
    rows = json.loads((calib_run / "bench" / "report.json").read_text())["rows"]
    pairs = {(r["model"], r["target"]) for r in rows}
    assert pairs == {
        *((m, t) for m in ("teacher", "student") for t in ("ort-int8", "ort-fp16")),
        ("student", "trt-int8 (qdq via ort)"),
    }
    for r in rows:
        assert "error" not in r, r
        assert 0 <= r["top1"] <= 100 and "top1_drop" in r
        assert r["precision"] == ("fp16" if r["target"] == "ort-fp16" else "int8")
    qdq = next(r for r in rows if r["target"] == "trt-int8 (qdq via ort)")
    assert qdq["runtime"] == "ort" and qdq["latency_ms"] is None and qdq["note"] == "accuracy preview"
    int8 = next(r for r in rows if r["model"] == "student" and r["target"] == "ort-int8")
    assert int8["latency_ms"]["p50"] > 0 and int8["size_mb"] < 0.5 * _mb(calib_run / "export" / "student.onnx")
    md = (calib_run / "bench" / "report.md").read_text()
    assert "| student (accuracy preview) | trt-int8 (qdq via ort) | int8 |" in md and "| drop |" in md


def _mb(path):
    return path.stat().st_size / 1e6


def test_calibrate_writes_every_model_and_records_them(calib_run):
    stages = _manifest(calib_run)
    assert set(stages) == {"teacher", "distill", "export", "calibrate", "bench", "bundle"}
    outputs = set(stages["calibrate"]["outputs"])
    expected = {f"calib/{role}.{f}.onnx" for role in ("student", "teacher") for f in (*FLAVOURS, "int8.trt-fp16")}
    sensitivity = {"calib/sensitivity.json", "calib/sensitivity.png"}  # only where a drop exceeded the budget
    assert outputs - sensitivity == expected | {"calib/calib.npz", "calib/accuracy.json"}
    assert "calibrate" in stages["bench"]["inputs"]
    for rel in outputs:
        assert (calib_run / rel).is_file()
    bundle = {p.name for p in (calib_run / "bundle").iterdir()}
    assert {"student.onnx", "student.int8.onnx", "student.fp16.onnx", "student.int8.qdq.onnx"} <= bundle
    assert (calib_run / "bundle" / "student.int8.onnx").read_bytes() == (
        calib_run / "calib" / "student.int8.cpu.onnx"
    ).read_bytes()


def test_calib_npz_is_stratified_and_reusable_without_the_dataset(calib_run):
    cs = load_calibset(calib_run / "calib" / "calib.npz")
    assert len(cs) == 512 and cs.img_size == 32 and cs.images.dtype == np.uint8
    assert set(cs.per_class().values()) == {51, 52}  # 512 over 10 classes
    assert cs.source["data"] == "fashion-mini" and cs.source["split"] == "train"
    student = graph.load(calib_run / "export" / "student.onnx")
    pre = Preprocess.from_dict(json.loads(graph.metadata(student)["lfcc.preprocess"]))
    x = model_inputs(cs, pre, graph.input_info(student)[1])
    assert x.shape == (512, 3, 32, 32)


def test_graphs_meet_tensorrt_rules(calib_run):
    for role in ("student", "teacher"):
        trt = onnx.load(calib_run / "calib" / f"{role}.int8.trt.onnx")
        assert checks.trt_qdq_problems(trt) == [], role
        fp16 = onnx.load(calib_run / "calib" / f"{role}.fp16.onnx")
        assert checks.fp16_problems(fp16, FP32_OPS) == [], role
    vit = onnx.load(calib_run / "calib" / "teacher.fp16.onnx")
    types = checks.tensor_types(vit)
    lns = [n for n in vit.graph.node if n.op_type in ("LayerNormalization", "Softmax")]
    assert lns and all(types[n.output[0]] == onnx.TensorProto.FLOAT for n in lns)


def test_every_model_agrees_with_fp32_on_real_images(calib_run):
    ds = load_dataset(parse_data_spec("fashion-mini"))
    raw = to_float(ds.test.images[:500], 32)
    for role in ("student", "teacher"):
        fp32 = calib_run / "export" / f"{role}.onnx"
        pre = Preprocess.from_dict(json.loads(graph.metadata(graph.load(fp32))["lfcc.preprocess"]))
        x = Normalization(pre.mean, pre.std)(raw).numpy()
        ref = graph.session(fp32).run(None, {"input": x})[0].argmax(1)
        assert len(np.unique(ref)) >= 4, f"{role} predicts {np.unique(ref)}: too few classes for a meaningful check"
        for flavour in FLAVOURS:
            got = graph.session(calib_run / "calib" / f"{role}.{flavour}.onnx").run(None, {"input": x})[0].argmax(1)
            agree = (got == ref).mean()
            assert agree >= (0.98 if flavour == "fp16" else 0.85), (role, flavour, agree)
    acc = json.loads((calib_run / "calib" / "accuracy.json").read_text())
    assert acc["split"] == "val" and acc["images"] == 600 and acc["gate"]["max_int8_drop"] == 1.0
    for flavour in FLAVOURS:
        assert acc["student"][flavour]["agreement_with_fp32"] >= (98 if flavour == "fp16" else 85)


def test_rerun_skips_and_budget_change_reruns_calibrate_and_bench(calib_copy):
    r = cli("run", *ARGS, "--out", str(calib_copy))
    assert r.returncode == 0, r.stderr
    assert "skipped (up to date): teacher, distill, export, calibrate, bench" in r.stderr
    before = _manifest(calib_copy)
    r = cli("run", *ARGS, "--max-int8-drop", "0.5", "--out", str(calib_copy))  # the mixed-precision target
    assert r.returncode == 0, r.stderr
    assert "skipped (up to date): teacher, distill, export" in r.stderr
    after = _manifest(calib_copy)
    assert after["calibrate"]["fingerprint"] != before["calibrate"]["fingerprint"]
    assert after["bench"]["fingerprint"] != before["bench"]["fingerprint"]
    r = cli("run", *ARGS, "--calib-method", "max", "--stop-after", "calibrate", "--out", str(calib_copy))
    assert r.returncode == 0, r.stderr
    assert _manifest(calib_copy)["calibrate"]["fingerprint"] != before["calibrate"]["fingerprint"]
    meta = graph.metadata(graph.load(calib_copy / "calib" / "student.int8.cpu.onnx"))
    assert meta["lfcc.calib_method"] == "max"


def test_mismatched_calib_file_is_one_line(calib_copy, tmp_path):
    cs = load_calibset(calib_copy / "calib" / "calib.npz")
    other = CalibSet(cs.images, cs.labels, 64, cs.resize, cs.crop_pct, cs.mean, cs.std, cs.classes, cs.source)
    save_calibset(tmp_path / "calib64.npz", other)
    r = cli("calibrate", *ARGS, "--calib-file", str(tmp_path / "calib64.npz"), "--out", str(calib_copy))
    lines = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "was drawn for 64 px inputs" in lines[0] and "expects 32 px" in lines[0]
    assert load_calibset(calib_copy / "calib" / "calib.npz").img_size == 32  # nothing was overwritten
    # a matching file is used as given
    r = cli("calibrate", *ARGS, "--calib-file", str(calib_copy / "calib" / "calib.npz"), "--out", str(calib_copy))
    assert r.returncode == 0, r.stderr
    assert "512 images (from " in r.stderr


def test_calibrate_command_runs_even_without_reduced_precision_targets(calib_copy):
    r = cli("calibrate", *BASE, "--target", "ort-fp32", "--calib-size", "256", "--out", str(calib_copy))
    assert r.returncode == 0, r.stderr
    assert "calibrate: student top-1 drop" in r.stderr
    assert len(load_calibset(calib_copy / "calib" / "calib.npz")) == 256


def test_bundle_leaves_out_calibrated_models_when_calibrate_is_not_part_of_the_run(calib_copy):
    """calib/ may hold an older export's models; a run without int8/fp16 targets must not ship them."""
    r = cli("run", *BASE, "--target", "ort-fp32", "--out", str(calib_copy))
    assert r.returncode == 0, r.stderr
    bundle = {p.name for p in (calib_copy / "bundle").iterdir()}
    assert "student.onnx" in bundle and not {"student.int8.onnx", "student.fp16.onnx"} & bundle
