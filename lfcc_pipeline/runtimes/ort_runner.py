"""ONNX Runtime runner (CPU provider by default; GPU providers where onnxruntime-gpu has them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lfcc_pipeline.core.errors import ArtifactError, TargetUnavailable
from lfcc_pipeline.runtimes.base import Runner


class OrtRunner(Runner):
    runtime = "ort"

    def __init__(
        self, onnx_path: Path, precision: str = "fp32", providers: list[str] | None = None, threads: int | None = None
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise TargetUnavailable(
                "ONNX Runtime is not installed", "pip install onnxruntime (or onnxruntime-gpu)"
            ) from e
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        # No busy-waiting of idle intra-op threads: on a CPU shared with other work (an app, another process)
        # spinning threads steal the cores the inference needs. benchmarks/ort_int8_options.py, ResNet18 INT8
        # 224 px, 2 threads, a machine running other jobs: 10.1 ms p50 without spinning vs 29.2 ms with it.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = providers or ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidGraph, NoSuchFile ...)
            raise ArtifactError(
                f"ONNX Runtime cannot load {onnx_path}: {str(e).splitlines()[0][:160]}", "re-export the model"
            ) from e
        if providers[0] not in self.session.get_providers():  # ORT falls back to the CPU silently
            raise TargetUnavailable(
                f"ONNX Runtime could not use {providers[0]} here (active: {', '.join(self.session.get_providers())})",
                "check the GPU, CUDA/cuDNN (and TensorRT) libraries, or use --ort-provider cpu",
            )
        self.precision = precision
        self.input_name = self.session.get_inputs()[0].name
        self.device = self.session.get_providers()[0].replace("ExecutionProvider", "").lower()

    def prepare(self, batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(batch, dtype=np.float32)

    def run(self, native_input: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: native_input})[0]

    def to_numpy(self, native_output: np.ndarray) -> np.ndarray:
        return native_output.astype(np.float32, copy=False)
