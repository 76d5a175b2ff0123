"""Measure a set of (model, target) candidates on the same images: accuracy, latency, throughput.

A candidate that fails becomes a row carrying its error, not a crash of the whole benchmark.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lfcc_pipeline.benchmark.measure import end_to_end, latency, throughput
from lfcc_pipeline.benchmark.report import add_speedups
from lfcc_pipeline.core.config import BenchConfig
from lfcc_pipeline.core.errors import LfccError
from lfcc_pipeline.core.metrics import agreement, topk_accuracy
from lfcc_pipeline.core.progress import progress
from lfcc_pipeline.runtimes.base import Runner

_logger = logging.getLogger(__name__)


@dataclass
class Candidate:
    model: str  # "teacher" | "student"
    name: str  # architecture name
    target: str
    runtime: str
    precision: str
    make_runner: Callable[[], Runner]
    preprocess: Callable[[torch.Tensor], np.ndarray]  # raw [0,1] NCHW -> the model's input
    size_mb: float
    params_m: float
    note: str = ""
    accuracy_only: bool = False  # skip latency/throughput (e.g. a TensorRT model run by ONNX Runtime)
    extra: dict[str, Any] = field(default_factory=dict)  # more row fields (e.g. layers_kept of an INT8 model)


def evaluate(
    runner: Runner, cand: Candidate, data: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]], total: int
):
    outs, labels = [], []
    for raw, y in progress(data(), desc=f"bench {cand.model} {cand.target}", total=total):
        outs.append(torch.from_numpy(runner(cand.preprocess(raw))))
        labels.append(y)
    return torch.cat(outs), torch.cat(labels)


def run_suite(
    candidates: list[Candidate],
    data: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    num_batches: int,
    reference: torch.Tensor | None,
    cfg: BenchConfig,
) -> list[dict[str, Any]]:
    """One row per candidate (DESIGN.md section 4); `reference` = FP32 teacher logits for agreement."""
    sample_raw = next(iter(data()))[0]
    rows = []
    for cand in candidates:
        row: dict[str, Any] = {
            "model": cand.model,
            "name": cand.name,
            "target": cand.target,
            "runtime": cand.runtime,
            "precision": cand.precision,
            "top1": None,
            "top5": None,
            "agreement": None,
            "latency_ms": None,
            "batch_size": cfg.batch_size,
            "throughput_ips": None,
            "size_mb": round(cand.size_mb, 3),
            "params_m": round(cand.params_m, 4),
        }
        if cand.note:
            row["note"] = cand.note
        row.update(cand.extra)
        try:
            runner = cand.make_runner()
            row["device"] = runner.device
            logits, labels = evaluate(runner, cand, data, num_batches)
            row["top1"] = round(topk_accuracy(logits, labels, 1), 3)
            row["top5"] = round(topk_accuracy(logits, labels, 5), 3)
            if reference is not None:
                row["agreement"] = round(agreement(logits, reference), 3)
            if not cand.accuracy_only:
                _speed(row, runner, cand, sample_raw, cfg)
        except LfccError as e:
            row["error"] = e.line()
            _logger.warning("bench %s %s failed: %s", cand.model, cand.target, e.line())
        except Exception as e:  # a runtime crash in one candidate must not lose the other rows
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            _logger.warning("bench %s %s failed: %s", cand.model, cand.target, row["error"])
        rows.append(row)
    add_speedups(rows)
    return rows


def _rounded(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def _speed(row: dict[str, Any], runner: Runner, cand: Candidate, sample_raw: torch.Tensor, cfg: BenchConfig) -> None:
    one = cand.preprocess(sample_raw[:1])
    row["latency_ms"] = _rounded(latency(runner, one, cfg.warmup, cfg.iters, cfg.max_seconds))
    if runner.device.startswith("cuda"):  # device time above; host-to-host here (as trtexec splits them)
        row["latency_e2e_ms"] = _rounded(end_to_end(runner, one, cfg.warmup, cfg.iters, cfg.max_seconds))
    size = min(cfg.batch_size, runner.max_batch or cfg.batch_size)  # an engine's profile may stop below
    row["batch_size"] = size
    batch = _tile(cand.preprocess(sample_raw), size)
    row["throughput_ips"] = round(throughput(runner.for_throughput(), batch, cfg.warmup, cfg.iters, cfg.max_seconds), 1)


def _tile(x: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // x.shape[0])
    return np.ascontiguousarray(np.concatenate([x] * reps)[:n])
