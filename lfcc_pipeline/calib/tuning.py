"""Accuracy-aware INT8 for one model: layer sensitivity per flavour, and mixed precision under a budget.

`tune` takes the model's all-INT8 Q/DQ files (one per flavour), its FP32 file and held-out images;
it measures sensitivity where asked or where a flavour's drop exceeds the budget, and for those over
budget searches the mixed model (calib/mixed.py). The caller writes what comes back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lfcc_pipeline.calib import graph
from lfcc_pipeline.calib.layers import float_constants, quantizable_layers
from lfcc_pipeline.calib.mixed import Mixed, search, top1
from lfcc_pipeline.calib.sensitivity import analyse, no_layers_error, run_logits

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneSpec:
    budget: float  # --max-int8-drop, top-1 points
    sensitivity: bool = False  # measure sensitivity even within budget
    sensitivity_images: int = 256  # cap on the images sensitivity runs on
    sensitivity_layers: int = 16  # cap on the layers measured (the highest by the proxy)
    mixed_max_layers: int = 8  # cap on the layers kept in higher precision (0: no mixed precision)
    threads: int | None = None


@dataclass
class Tuned:
    sensitivity: dict = field(default_factory=dict)  # flavour -> calib/sensitivity.py analyse() report
    mixed: dict[str, Mixed] = field(default_factory=dict)  # flavour -> search result (flavours over budget)


def tune(
    qdq: dict[str, Path],
    fp32_path: Path,
    x: np.ndarray,
    labels: np.ndarray,
    spec: TuneSpec,
    label: str = "student",
) -> Tuned:
    """Sensitivity and mixed precision for each flavour in `qdq` ({flavour: path}); `x`, `labels`: the
    held-out images (sensitivity uses the first spec.sensitivity_images of them)."""
    fp32_model = graph.load(fp32_path)
    fp32 = float_constants(fp32_model)
    ref = run_logits(fp32_model, x, spec.threads)
    ref_top1 = top1(ref, labels)
    n = min(spec.sensitivity_images, len(x))
    out = Tuned()
    for flavour, path in qdq.items():
        model = graph.load(path)
        drop = round(ref_top1 - top1(run_logits(model, x, spec.threads), labels), 3)
        over = drop > spec.budget
        if not (spec.sensitivity or over):
            continue
        if not quantizable_layers(model):
            if spec.sensitivity:
                raise no_layers_error(f"{label} {flavour} ({path.name})")
            continue
        _logger.info("calibrate: %s %s layer sensitivity on %d held-out images (top-1 drop %.2f)",
                     label, flavour, n, drop)  # fmt: skip
        report = analyse(model, fp32, x[:n], ref[:n], spec.sensitivity_layers, spec.threads, f"{label} {flavour}")
        report["all_int8_drop"] = drop
        out.sensitivity[flavour] = report
        if over and spec.mixed_max_layers > 0:
            order = [r["node"] for r in report["layers"]]
            out.mixed[flavour] = search(model, fp32, order, x, labels, ref_top1, spec.budget,
                                        spec.mixed_max_layers, spec.threads)  # fmt: skip
    return out


def mixed_line(label: str, flavour: str, m: Mixed, budget: float, cap: int) -> str:
    """One line on what the budget search did."""
    names = ", ".join(k["module"] or k["node"] for k in m.kept) or "none"
    if m.met:
        return (f"{label} {flavour}: {len(m.kept)} layer(s) kept in higher precision ({names}); top-1 drop "
                f"{m.all_int8_drop:.2f} -> {m.drop:.2f} points, within --max-int8-drop {budget:g}")  # fmt: skip
    return (
        f"{label} {flavour}: top-1 drop {m.all_int8_drop:.2f} points stays above --max-int8-drop {budget:g} with up "
        f"to {cap} layer(s) in higher precision; kept the best model found ({len(m.kept)} layer(s): {names}; "
        f"drop {m.drop:.2f})"
    )
