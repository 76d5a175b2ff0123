"""compare/report.{json,md,png}: mean ± std test top-1 per method, gain over the student alone, seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lfcc_pipeline.core.atomic import write_json, write_text, write_with


def compare_markdown(result: dict[str, Any]) -> str:
    t = result["teacher"]
    lines = [
        f"# {t['model']} -> {result['student']} on {result['data']}",
        "",
        f"Teacher ({t['source']}): test top-1 {t['test_top1']:.2f}%; students: {result['epochs']} epochs, "
        f"seeds {', '.join(map(str, result['seeds']))}, training subset {result['train_subset'] or 'all'}.",
        "",
        "| method | test top-1 (mean ± std) | val top-1 | gain over student alone | s / run |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m, row in sorted(result["methods"].items(), key=lambda kv: -kv[1]["test_mean"]):
        gain = row["gain_over_student_alone"]
        lines.append(
            f"| {m} | {row['test_mean']:.2f} ± {row['test_std']:.2f} | {row['val_mean']:.2f} | "
            f"{'—' if gain is None else f'{gain:+.2f}'} | {row['seconds_per_run']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def compare_plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["methods"])
    means = [result["methods"][m]["test_mean"] for m in names]
    stds = [result["methods"][m]["test_std"] for m in names]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(names) + 1.5), 3.6))
    ax.bar(names, means, yerr=stds, capsize=4, color="#4C72B0")
    ax.axhline(result["teacher"]["test_top1"], color="#C44E52", linestyle="--", label="teacher")
    low = min(m - s for m, s in zip(means, stds, strict=True))
    ax.set_ylim(max(0.0, low - 5), min(100.0, max(max(means), result["teacher"]["test_top1"]) + 3))
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"{result['teacher']['model']} -> {result['student']} ({len(result['seeds'])} seed(s))")
    ax.legend(loc="lower right")
    fig.tight_layout()
    write_with(path, lambda p: fig.savefig(p, format="png", dpi=120))
    plt.close(fig)


def write_compare_report(out_dir: Path, result: dict[str, Any]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "report.json", out_dir / "report.md", out_dir / "report.png"]
    write_json(paths[0], result)
    write_text(paths[1], compare_markdown(result))
    compare_plot(result, paths[2])
    return paths
