"""Latency and throughput of a Runner: warm up, synchronise, time each call."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from lfcc_pipeline.runtimes.base import Runner


def time_calls(runner: Runner, native_input: Any, warmup: int, iters: int, max_seconds: float) -> np.ndarray:
    """Milliseconds per call, after `warmup` untimed calls; stops at `iters` or after max_seconds.

    Runners on a CUDA stream are timed with CUDA events on that stream (device time, as trtexec
    reports its GPU compute time); the others with the host clock around call + synchronize.
    """
    for _ in range(warmup):
        runner.run(native_input)
    runner.synchronize()
    stream = getattr(runner, "stream", None)
    times = []
    deadline = time.perf_counter() + max_seconds
    for _ in range(iters):
        if stream is not None:
            import torch

            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            runner.run(native_input)
            end.record(stream)
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            runner.run(native_input)
            runner.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() > deadline and len(times) >= max(warmup, 5):
            break
    return np.asarray(times)


def end_to_end(runner: Runner, sample: np.ndarray, warmup: int, iters: int, max_seconds: float) -> dict[str, float]:
    """Host-to-host milliseconds per call: input copy to the device, inference, output copy back."""
    for _ in range(warmup):
        runner(sample)
    times = []
    deadline = time.perf_counter() + max_seconds
    for _ in range(iters):
        t0 = time.perf_counter()
        runner(sample)
        times.append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() > deadline and len(times) >= max(warmup, 5):
            break
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


def latency(runner: Runner, sample: np.ndarray, warmup: int, iters: int, max_seconds: float) -> dict[str, float]:
    """p50/p90/p99 milliseconds at the batch size of `sample`."""
    ms = time_calls(runner, runner.prepare(sample), warmup, iters, max_seconds)
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(ms.mean()), "iters": int(ms.size)}


def throughput(runner: Runner, batch: np.ndarray, warmup: int, iters: int, max_seconds: float) -> float:
    """Images per second at the batch size of `batch` (median call time)."""
    ms = time_calls(runner, runner.prepare(batch), max(1, warmup // 2), iters, max_seconds)
    return float(batch.shape[0] / (np.median(ms) / 1e3))
