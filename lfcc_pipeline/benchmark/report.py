"""The benchmark report: report.json (DESIGN.md section 4 schema), report.md, report.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lfcc_pipeline.core.atomic import write_json, write_text, write_with

COLUMNS = (
    ("model", "model"),
    ("target", "target"),
    ("precision", "precision"),
    ("top-1 %", "top1"),
    ("top-5 %", "top5"),
    ("agree %", "agreement"),
    ("p50 ms", "p50"),
    ("p90 ms", "p90"),
    ("p99 ms", "p99"),
    ("img/s", "throughput_ips"),
    ("MB", "size_mb"),
    ("params M", "params_m"),
    ("speedup", "speedup_vs_teacher"),
)


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """speedup_vs_teacher: the teacher's p50 on the same target over this row's p50. Where the teacher
    was not measured on that target (bench --model with different files, an INT8 student without an
    INT8 teacher), the teacher's fastest row is the reference, named in `speedup_reference`."""
    timed = [r for r in rows if r["model"] == "teacher" and r.get("latency_ms")]
    same = {r["target"]: r for r in timed}
    fastest = min(timed, key=lambda r: r["latency_ms"]["p50"], default=None)
    for r in rows:
        t = same.get(r["target"], fastest)
        ok = t is not None and r.get("latency_ms") and r["latency_ms"]["p50"] > 0
        r["speedup_vs_teacher"] = round(t["latency_ms"]["p50"] / r["latency_ms"]["p50"], 3) if ok else None
        if ok and t["target"] != r["target"]:
            r["speedup_reference"] = f"teacher {t['target']}"


def _cell(row: dict[str, Any], key: str) -> str:
    if key in ("p50", "p90", "p99"):
        value = (row.get("latency_ms") or {}).get(key)
    elif key == "e2e_p50":  # GPU rows: host-to-host, the copies included
        value, key = (row.get("latency_e2e_ms") or {}).get("p50"), "p50"
    else:
        value = row.get(key)
    if value is None:
        return "–"
    if isinstance(value, float):
        if key in ("speedup_vs_teacher",):
            return f"{value:.2f}x"
        if key == "throughput_ips":
            return f"{value:,.0f}"
        return f"{value:.3f}" if key in ("p50", "p90", "p99") and value < 1 else f"{value:.2f}"
    return str(value)


def _columns(rows: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """COLUMNS, plus the reduced-precision top-1 drop after agreement when some row has one, and the
    end-to-end p50 after p99 when some row was timed on a GPU."""
    columns = COLUMNS
    if any(r.get("latency_e2e_ms") for r in rows):
        columns = _insert_after(columns, "p99", ("e2e p50 ms", "e2e_p50"))
    if any(r.get("top1_drop") is not None for r in rows):
        columns = _insert_after(columns, "agreement", ("drop", "top1_drop"))
    if any(r.get("layers_kept") for r in rows):
        columns = _insert_after(columns, "precision", ("FP32 layers", "layers_kept"))
    return columns


def kept_lines(rows: list[dict[str, Any]], data: dict[str, Any]) -> list[str]:
    """The report's lines on INT8 layers kept in higher precision and on the layer sensitivity."""
    lines = [
        f"{r['model']} {r['target']}: {r['layers_kept']} layer(s) kept in higher precision to meet "
        f"--max-int8-drop: {', '.join(r['kept_layers'])}"
        for r in rows
        if r.get("layers_kept")
    ]
    for flavour, top in (data.get("sensitivity") or {}).items():
        named = ", ".join(f"{name} ({gain:+.1f} pts)" for name, gain in top)
        lines.append(f"Most sensitive layers, student {flavour} (calib/sensitivity.json, agreement gained when "
                     f"kept in higher precision): {named}")  # fmt: skip
    return lines


def _insert_after(columns: tuple[tuple[str, str], ...], key: str, column: tuple[str, str]):
    at = [k for _, k in columns].index(key) + 1
    return (*columns[:at], column, *columns[at:])


def markdown_table(rows: list[dict[str, Any]]) -> str:
    columns = _columns(rows)
    head = "| " + " | ".join(c for c, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = []
    for r in rows:
        cells = [_cell(r, k) for _, k in columns]
        if r.get("gate"):
            cells[3] += " ⚠"
        if r.get("error"):
            cells[3] = f"failed: {r['error']}"
        if r.get("note"):
            cells[0] += f" ({r['note']})"
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *body])


def write_report(out_dir: Path, rows: list[dict[str, Any]], env: dict[str, Any], data: dict[str, Any]) -> list[Path]:
    """Write report.json, report.md and report.png into out_dir; return their paths."""
    report = {"rows": rows, "env": env, "data": data}
    paths = [out_dir / "report.json", out_dir / "report.md", out_dir / "report.png"]
    write_json(paths[0], report)
    md = [
        "# Benchmark: teacher vs student",
        "",
        f"Data: {data.get('spec')} {data.get('split')} split, {data.get('images')} images at "
        f"{data.get('img_size')} px. Latency at batch 1 (p50/p90/p99), throughput at batch "
        f"{data.get('throughput_batch')}. Agreement: top-1 agreement with the FP32 PyTorch teacher."
        + (
            " Drop: top-1 points an INT8/FP16 model loses against the same model in FP32."
            if "max_int8_drop" in data
            else ""
        ),
        "",
        markdown_table(rows),
        "",
        *[
            f"⚠ {r['model']} {r['target']}: {r['gate']} (top-1 points vs the FP32 {r['model']})"
            for r in rows
            if r.get("gate")
        ],
        *kept_lines(rows, data),
        "",
        f"Environment: {json.dumps(env, sort_keys=True)}",
        "",
    ]
    write_text(paths[1], "\n".join(md))
    write_with(paths[2], lambda tmp: plot(rows, tmp))
    return paths


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Accuracy vs latency, one point per (model, target)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    colors = {"teacher": "tab:orange", "student": "tab:blue"}
    for r in rows:
        if r.get("top1") is None or not r.get("latency_ms"):
            continue
        x, y = r["latency_ms"]["p50"], r["top1"]
        ax.scatter(x, y, s=60, color=colors.get(r["model"], "tab:gray"), marker="o" if r["model"] == "student" else "s")
        ax.annotate(f"{r['model']} {r['target']}", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("latency p50 at batch 1 (ms, log scale)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("accuracy vs latency")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
