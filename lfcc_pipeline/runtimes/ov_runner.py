"""OpenVINO CPU runner: an IR (or ONNX) file compiled for the CPU plugin with our benchmark settings.

- threads: INFERENCE_NUM_THREADS (--threads); mode "latency": PERFORMANCE_HINT LATENCY, one request
  (batch-1 latency); mode "throughput": PERFORMANCE_HINT THROUGHPUT, the batch split over the
  plugin's optimal number of infer requests, run in parallel streams (the --bench-batch figure).
- precision: fp32 pins INFERENCE_PRECISION_HINT to f32 (OpenVINO's CPU default is bf16 on CPUs with
  native BF16, which would make an "FP32" row a BF16 one); fp16 asks for f16 (ov-fp16, CPUs with native
  FP16 only, see ov_install); int8 leaves the hint at the plugin's default for the few layers outside
  the INT8 regions, as OpenVINO's own INT8 deployments do (the bench's drop column measures the result).
- each batch size gets its own static-shape compiled model (OpenVINO's CPU plugin runs static shapes
  faster than the dynamic batch axis of our exports).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lfcc_pipeline.core.errors import ArtifactError, TargetUnavailable
from lfcc_pipeline.runtimes.base import Runner
from lfcc_pipeline.runtimes.ov_install import fp16_reason, import_openvino
from lfcc_pipeline.runtimes.ov_ir import read_model

PRECISION_HINT = {"fp32": "f32", "fp16": "f16"}  # int8: the plugin's default outside the INT8 regions
MODES = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


def compile_config(precision: str, threads: int | None, mode: str) -> dict[str, Any]:
    """The CPU plugin properties of a target: threads, performance hint, inference precision."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": MODES[mode]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if precision in PRECISION_HINT:
        config["INFERENCE_PRECISION_HINT"] = PRECISION_HINT[precision]
    return config


class OvRunner(Runner):
    runtime = "ov"
    device = "cpu"

    def __init__(self, path: Path, precision: str = "fp32", threads: int | None = None, mode: str = "latency") -> None:
        ov = import_openvino()
        path = Path(path)
        self.core = ov.Core()
        if precision == "fp16":
            reason = fp16_reason([str(c) for c in self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")])
            if reason:
                raise TargetUnavailable(reason)
        if path.suffix == ".xml":
            self.model = read_model(path)
        else:
            try:
                self.model = self.core.read_model(str(path))
            except Exception as e:
                raise ArtifactError(f"OpenVINO cannot read {path}: {str(e).strip().splitlines()[0][:160]}",
                                    "re-export the model") from e  # fmt: skip
        self.path, self.precision, self.threads, self.mode = path, precision, threads, mode
        self.config = compile_config(precision, threads, mode)
        self._compiled: dict[int, tuple[Any, list[Any]]] = {}

    def _requests(self, batch: int) -> list[Any]:
        """The infer requests of the model compiled for a static batch of `batch` images."""
        if batch not in self._compiled:
            model = self.model.clone()
            shape = model.inputs[0].get_partial_shape()
            shape[0] = batch
            model.reshape({model.inputs[0]: shape})
            compiled = self.core.compile_model(model, "CPU", self.config)
            n = 1 if self.mode == "latency" else max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
            self._compiled[batch] = (compiled, [compiled.create_infer_request() for _ in range(n)])
        return self._compiled[batch][1]

    def prepare(self, batch: np.ndarray) -> list[tuple[Any, np.ndarray]]:
        """(request, its part of the batch): one part in latency mode, one per parallel request for throughput."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        parts = 1 if self.mode == "latency" else min(len(x), len(self._requests(1)))
        chunks = [np.ascontiguousarray(c) for c in np.array_split(x, parts)]
        return [(self._requests(len(c))[i], c) for i, c in enumerate(chunks)]

    def run(self, native_input: list[tuple[Any, np.ndarray]]) -> list[Any]:
        if len(native_input) == 1:
            request, x = native_input[0]
            request.infer({0: x})
            return [request]
        for request, x in native_input:
            request.start_async({0: x})
        for request, _ in native_input:
            request.wait()
        return [request for request, _ in native_input]

    def to_numpy(self, native_output: list[Any]) -> np.ndarray:
        return np.concatenate([r.get_output_tensor(0).data.astype(np.float32) for r in native_output])

    def for_throughput(self) -> OvRunner:
        """The same model with the THROUGHPUT hint (parallel streams), for the --bench-batch figure."""
        return OvRunner(self.path, self.precision, self.threads, mode="throughput")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "config": dict(self.config)}
