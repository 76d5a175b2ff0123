"""calib/sensitivity.png: per INT8 flavour, the analysed layers sorted by effect (calib/sensitivity.py)."""

from __future__ import annotations

from pathlib import Path

from lfcc_pipeline.core.atomic import write_with

MAX_BARS = 16  # layers drawn per flavour


def _label(row: dict) -> str:
    name = f"{row['module']}  [{row['node']}]" if row.get("module") else row["node"]
    return name if len(name) <= 80 else name[:38] + "…" + name[-41:]


def plot_sensitivity(report: dict, path: Path) -> None:
    """Horizontal bars: top-1 agreement with FP32 with only that layer in higher precision; the all-INT8
    agreement as a dashed line; each bar annotated with its output error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flavours = [(f, r) for f, r in report["flavours"].items() if r.get("layers")]
    heights = [min(len(r["layers"]), MAX_BARS) for _, r in flavours] or [1]
    fig, axes = plt.subplots(len(flavours) or 1, 1, dpi=120, squeeze=False,
                             figsize=(9, 1.2 + 0.32 * sum(heights) + 0.9 * len(heights)),
                             gridspec_kw={"height_ratios": heights})  # fmt: skip
    for ax, (flavour, r) in zip(axes[:, 0], flavours, strict=False):
        rows = r["layers"][:MAX_BARS][::-1]  # the most sensitive on top
        values = [row["agreement"] for row in rows]
        ax.barh(range(len(rows)), values, color="tab:blue", alpha=0.8)
        base = r["all_int8"]["agreement"]
        ax.axvline(base, color="tab:red", linestyle="--", label=f"all INT8: {base:.1f}%")
        ax.set_yticks(range(len(rows)), [_label(row) for row in rows], fontsize=7)
        low = min([base, *values])
        ax.set_xlim(max(0.0, low - 2 * (100.5 - low) - 1), 100.5)
        for i, row in enumerate(rows):
            ax.annotate(f"err {row['output_error']:.3f}", (values[i], i), xytext=(3, -3),
                        textcoords="offset points", fontsize=6)  # fmt: skip
        ax.set_title(f"{report.get('model', 'model')} {flavour}: only this layer in higher precision "
                     f"({r['images']} val images)", fontsize=9)  # fmt: skip
        ax.set_xlabel("top-1 agreement with FP32 (%)", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
