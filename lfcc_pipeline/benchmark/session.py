"""The one benchmark orchestration, shared by the `bench` stage and `bench --model`: the test images
(cut to --bench-max-images), the teacher reference for agreement, the suite, the drop column and
the INT8 gate, and the report with this machine's environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lfcc_pipeline.benchmark.drops import mark_drops
from lfcc_pipeline.benchmark.report import write_report
from lfcc_pipeline.benchmark.suite import Candidate, run_suite
from lfcc_pipeline.core.config import BenchConfig
from lfcc_pipeline.core.errors import StageFailed
from lfcc_pipeline.data.loader import Batches
from lfcc_pipeline.data.sources import Dataset, Split
from lfcc_pipeline.data.transforms import to_float
from lfcc_pipeline.runtimes.probe import probe

EVAL_BATCH = 64  # images per accuracy batch
ImageStream = Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # raw [0,1] NCHW images, labels


@dataclass
class Reference:
    """The teacher logits agreement is measured against (None: no teacher) and what the report says of them."""

    logits: torch.Tensor | None
    info: dict[str, Any] = field(default_factory=dict)


def numpy_preprocess(norm) -> Callable[[torch.Tensor], np.ndarray]:
    """raw [0,1] images -> the float32 numpy input of a model normalised by `norm`."""
    return lambda raw: norm(raw).numpy().astype(np.float32, copy=False)


def run_benchmark(
    cands: list[Candidate],
    ds: Dataset,
    img_size: int,
    make_batches: Callable[[Split], Batches],
    reference_of: Callable[[ImageStream], Reference],
    cfg: BenchConfig,
    out_dir: Path,
    info: dict[str, Any] | None = None,
    max_drop: float | None = None,
    fp32_top1: Callable[[ImageStream, torch.Tensor | None], dict[str, float]] | None = None,
    need_a_row: bool = False,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Measure `cands` on the test split of `ds`; write report.{json,md,png} to `out_dir`.

    Returns (rows, lines for the student INT8 rows beyond `max_drop`). `need_a_row`: StageFailed when
    no candidate could be measured at all; `fp32_top1(data, reference)`: FP32 top-1 per role for drops."""
    split = ds.test
    if cfg.max_images is not None and cfg.max_images < len(split):
        split = split.subset(np.arange(cfg.max_images))
    test = make_batches(split)

    def data() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in test:
            yield to_float(x, img_size), y

    reference = reference_of(data)
    rows = run_suite(cands, data, len(test), reference.logits, cfg)
    if need_a_row and all(r.get("error") for r in rows):
        raise StageFailed(f"no model could be measured ({rows[0]['target']}: {rows[0]['error']})",
                          "the warnings above give each model's error")  # fmt: skip
    fp32 = None if fp32_top1 is None else (lambda: fp32_top1(data, reference.logits))
    over = mark_drops(rows, max_drop, fp32)
    report_info = {"spec": ds.name, "split": "test", "images": len(split), "img_size": img_size,
                   "classes": ds.num_classes, "throughput_batch": cfg.batch_size, **(info or {}), **reference.info}  # fmt: skip
    if max_drop is not None and any("top1_drop" in r for r in rows):
        report_info["max_int8_drop"] = max_drop
    write_report(out_dir, rows, probe(), report_info)
    return rows, over
