"""The INT8 accuracy gate (--max-int8-drop, --strict): in calibrate's check and in the report."""

import pytest

from lfcc_pipeline.benchmark.drops import mark_drops
from lfcc_pipeline.benchmark.report import markdown_table
from lfcc_pipeline.core.config import CalibConfig, DataConfig, RunConfig
from lfcc_pipeline.stages import calibrate
from lfcc_pipeline.stages.bench import TRT_QDQ_TARGET


def _row(model, target, precision, top1):
    return {"model": model, "target": target, "precision": precision, "top1": top1, "top5": 99.0,
            "agreement": 90.0, "latency_ms": None, "size_mb": 1.0, "params_m": 1.0}  # fmt: skip


def _rows():
    return [
        _row("teacher", "ort-fp32", "fp32", 90.0),
        _row("teacher", "ort-int8", "int8", 88.0),  # the teacher is not gated
        _row("student", "ort-fp32", "fp32", 80.0),
        _row("student", "ort-int8", "int8", 79.5),
        _row("student", "ort-fp16", "fp16", 80.0),
        _row("student", TRT_QDQ_TARGET, "int8", 78.0),
    ]


def test_drops_are_measured_against_the_same_model_in_fp32_and_beyond_the_gate_marked():
    rows = _rows()
    over = mark_drops(rows, 1.0, lambda: pytest.fail("not needed"))
    drops = {(r["model"], r["target"]): r.get("top1_drop") for r in rows}
    assert drops == {
        ("teacher", "ort-fp32"): None,
        ("teacher", "ort-int8"): 2.0,
        ("student", "ort-fp32"): None,
        ("student", "ort-int8"): 0.5,
        ("student", "ort-fp16"): 0.0,
        ("student", TRT_QDQ_TARGET): 2.0,
    }
    marked = [r for r in rows if r.get("gate")]
    assert [(r["model"], r["target"]) for r in marked] == [("student", TRT_QDQ_TARGET)]
    assert len(over) == 1 and "loses 2.00 top-1 points" in over[0] and "--max-int8-drop 1" in over[0]
    md = markdown_table(rows)
    assert "| drop |" in md and "| 78.00 ⚠ |" in md and md.count("⚠") == 1


def test_fp32_reference_is_computed_when_no_fp32_row_was_asked_for():
    rows = [r for r in _rows() if r["precision"] != "fp32"]
    over = mark_drops(rows, RunConfig().calib.max_int8_drop, lambda: {"teacher": 88.5, "student": 79.0})
    assert next(r for r in rows if r["target"] == "ort-int8" and r["model"] == "student")["top1_drop"] == -0.5
    assert over == []  # 78.0 is exactly 1.0 below 79.0: not beyond the gate


def test_without_a_fallback_only_models_with_an_fp32_row_get_a_drop():
    """`bench --model` files: a drop where the same model's FP32 file was measured too, no gate."""
    rows = [r for r in _rows() if (r["model"], r["precision"]) != ("teacher", "fp32")]
    assert mark_drops(rows, None) == []
    drops = {(r["model"], r["target"]): r.get("top1_drop") for r in rows}
    assert drops[("teacher", "ort-int8")] is None and drops[("student", TRT_QDQ_TARGET)] == 2.0
    assert not any(r.get("gate") for r in rows)
    other = [{**_row("student", "ort-fp32", "fp32", 80.0), "name": "resnet18"},
             {**_row("student", "ort-int8", "int8", 70.0), "name": "mobilenetv3"}]  # fmt: skip
    mark_drops(other, None)
    assert "top1_drop" not in other[1]  # another architecture is no reference


def test_no_reduced_precision_rows_leave_the_table_unchanged():
    rows = [_row("student", "ort-fp32", "fp32", 80.0)]
    assert mark_drops(rows, 1.0, lambda: pytest.fail("not needed")) == []
    assert "drop" not in markdown_table(rows)


def _accuracy(trt_drop, cpu_drop):
    return {
        "images": 600,
        "student": {
            "fp32": {"top1": 80.0},
            "int8.trt": {"top1": 80.0 - trt_drop, "top1_drop": trt_drop},
            "int8.cpu": {"top1": 80.0 - cpu_drop, "top1_drop": cpu_drop},
            "fp16": {"top1": 80.0, "top1_drop": 0.0},
        },
    }


def test_calibrate_gate_names_each_flavour_beyond_the_limit():
    cfg = RunConfig(calib=CalibConfig(max_int8_drop=0.5))
    assert calibrate.gate(cfg, _accuracy(0.5, 0.2)) == []
    lines = calibrate.gate(cfg, _accuracy(1.5, 0.7))
    assert len(lines) == 2 and lines[0].startswith("student int8.trt loses 1.50 top-1 points (78.50% vs FP32 80.00%")


def test_strict_does_not_recalibrate_but_the_budget_does():
    """--max-int8-drop is the mixed-precision search's target, so it changes the models; --strict does not."""
    a = calibrate.config_slice(RunConfig(calib=CalibConfig(max_int8_drop=1.0, strict=False), data=_mini()))
    b = calibrate.config_slice(RunConfig(calib=CalibConfig(max_int8_drop=1.0, strict=True), data=_mini()))
    c = calibrate.config_slice(RunConfig(calib=CalibConfig(method="max"), data=_mini()))
    d = calibrate.config_slice(RunConfig(calib=CalibConfig(max_int8_drop=0.1), data=_mini()))
    assert a == b and a != c and a != d


def _mini():
    return DataConfig(spec="fashion-mini")
