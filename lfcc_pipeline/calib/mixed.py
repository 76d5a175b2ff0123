"""Automatic mixed precision under a top-1 budget: keep layers of an INT8 Q/DQ model in higher
precision, most sensitive first, until the measured drop is within the budget or a cap is reached.

The drop is top-1 points against the labels, FP32 model minus candidate, on the images given (the
calibrate stage's held-out validation images). Layers are added in the order given (calib/
sensitivity.py, most sensitive first); each step keeps one more. Without a step within budget the
best model seen (lowest drop, then fewest layers) is returned with `met` False. Deterministic:
same model, order and images give the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lfcc_pipeline.calib.layers import Layer, keep_float, quantizable_layers
from lfcc_pipeline.calib.sensitivity import run_logits


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return round(100.0 * float((logits.argmax(1) == labels).mean()), 3)


@dataclass
class Mixed:
    model: object  # the chosen onnx ModelProto
    kept: list[dict]  # layers in higher precision (Layer.describe()), in the order kept
    drop: float  # its top-1 drop against FP32
    all_int8_drop: float
    met: bool  # drop <= budget
    steps: list[dict] = field(default_factory=list)  # {"layers": k, "drop": d} per step tried

    def describe(self) -> dict:
        return {"kept": self.kept, "drop": self.drop, "all_int8_drop": self.all_int8_drop, "met": self.met,
                "steps": self.steps}  # fmt: skip


def search(
    model,
    fp32: dict,
    order: list[str],
    x: np.ndarray,
    labels: np.ndarray,
    ref_top1: float,
    budget: float,
    max_layers: int,
    threads: int | None = None,
) -> Mixed:
    """Keep the first k layers of `order` (k = 0, 1, ... max_layers) until the drop is <= `budget`."""
    layers = quantizable_layers(model)
    by_name: dict[str, Layer] = {layer.node: layer for layer in layers}
    order = [n for n in order if n in by_name][:max_layers]
    d0 = round(ref_top1 - top1(run_logits(model, x, threads), labels), 3)
    best = Mixed(model, [], d0, d0, d0 <= budget)
    for k in range(1, len(order) + 1):
        if best.met:
            break
        candidate = keep_float(model, order[:k], fp32, layers)
        d = round(ref_top1 - top1(run_logits(candidate, x, threads), labels), 3)
        best.steps.append({"layers": k, "drop": d})
        if d < best.drop:
            best.model, best.kept, best.drop = candidate, [by_name[n].describe() for n in order[:k]], d
        best.met = best.drop <= budget
    return best
