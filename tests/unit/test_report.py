"""The report table's columns and the speedup reference (no models needed)."""

from lfcc_pipeline.benchmark.report import add_speedups, markdown_table


def _row(model, target, p50, **extra):
    return {"model": model, "target": target, "precision": target.split("-")[-1], "top1": 80.0,
            "latency_ms": {"p50": p50, "p90": p50, "p99": p50}, **extra}  # fmt: skip


def test_speedup_uses_the_same_target_else_the_fastest_teacher_row():
    rows = [_row("teacher", "trt-fp16", 2.0), _row("teacher", "trt-fp32", 4.0), _row("student", "trt-fp32", 1.0),
            _row("student", "trt-int8", 0.5)]  # fmt: skip
    add_speedups(rows)
    assert rows[2]["speedup_vs_teacher"] == 4.0 and "speedup_reference" not in rows[2]
    assert rows[3]["speedup_vs_teacher"] == 4.0 and rows[3]["speedup_reference"] == "teacher trt-fp16"


def test_no_teacher_no_speedup():
    rows = [_row("student", "ort-fp32", 1.0)]
    add_speedups(rows)
    assert rows[0]["speedup_vs_teacher"] is None


def test_end_to_end_column_only_when_some_row_has_it():
    cpu = [_row("student", "ort-fp32", 1.0)]
    assert "e2e p50 ms" not in markdown_table(cpu)
    gpu = [_row("student", "trt-fp16", 0.25, latency_e2e_ms={"p50": 0.75})]
    table = markdown_table(gpu)
    head, _, row = table.strip().splitlines()[:3]
    cells = dict(zip(head.split("|"), row.split("|"), strict=True))
    assert cells[" e2e p50 ms "].strip() == "0.750" and cells[" p50 ms "].strip() == "0.250"


def test_int8_rows_say_which_layers_stay_in_higher_precision(tmp_path):
    from lfcc_pipeline.benchmark.report import kept_lines, write_report

    all_int8 = [_row("student", "ort-int8", 0.5, layers_kept=0, kept_layers=[])]
    assert "FP32 layers" not in markdown_table(all_int8) and kept_lines(all_int8, {}) == []
    rows = [_row("student", "ort-fp32", 1.0), _row("student", "ort-int8", 0.5, layers_kept=2,
            kept_layers=["layer1.0.conv1", "fc"])]  # fmt: skip
    head, _, fp32, int8 = markdown_table(rows).splitlines()
    cells = dict(zip(head.split("|"), int8.split("|"), strict=True))
    assert (
        cells[" FP32 layers "].strip() == "2"
        and dict(zip(head.split("|"), fp32.split("|"), strict=True))[" FP32 layers "].strip() == "–"
    )
    data = {"sensitivity": {"int8.cpu": [["layer1.0.conv1", 12.5], ["fc", 0.4]]}}
    write_report(tmp_path, rows, {}, data)
    md = (tmp_path / "report.md").read_text()
    assert "student ort-int8: 2 layer(s) kept in higher precision to meet --max-int8-drop: layer1.0.conv1, fc" in md
    assert "Most sensitive layers, student int8.cpu" in md and "layer1.0.conv1 (+12.5 pts)" in md
