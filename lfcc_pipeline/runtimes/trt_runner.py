"""Run a TensorRT engine with torch CUDA tensors and a torch stream (no pycuda).

Name-based I/O, present from TensorRT 8.5 through 11: `set_input_shape`, `set_tensor_address`
with `tensor.data_ptr()`, `infer_shapes`, `execute_async_v3(stream.cuda_stream)` on a
non-default stream. Buffers are allocated per batch size from the engine's own tensor dtypes
(an AutoCast FP16 model may have FP16 I/O). Optional CUDA-graph replay for a fixed shape:
execute once, synchronise, capture, replay (what trtexec does), falling back to plain execution
when capture fails.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from lfcc_pipeline.core.errors import ArtifactError, ConfigError
from lfcc_pipeline.runtimes.base import Runner
from lfcc_pipeline.runtimes.trt_engine import gpu_identity, import_tensorrt, make_logger, read_engine_meta
from lfcc_pipeline.runtimes.trt_plan import engine_mismatch

_logger = logging.getLogger(__name__)


def torch_dtype(trt, dtype):
    """trt.DataType -> torch dtype (members missing on older TensorRT are skipped)."""
    import torch

    table = {
        "FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT8": torch.int8,
        "INT32": torch.int32, "INT64": torch.int64, "BOOL": torch.bool, "UINT8": torch.uint8,
    }  # fmt: skip
    for name, tdtype in table.items():
        member = getattr(trt.DataType, name, None)
        if member is not None and dtype == member:
            return tdtype
    raise ConfigError(f"engine tensor type {dtype} is not supported by the runner", "rebuild with FP32/FP16 I/O")


class TrtRunner(Runner):
    """Runs one engine on a torch CUDA stream of its own. `run` returns the engine's output tensor,
    which the next call overwrites: `to_numpy` (or a copy) before calling again."""

    runtime = "trt"

    def __init__(self, engine_path: Path, cuda_graph: bool = False, device_index: int = 0) -> None:
        import torch

        trt = import_tensorrt()
        self.trt, self.path = trt, Path(engine_path)
        meta = read_engine_meta(self.path)
        here = gpu_identity(device_index)
        if meta:
            problem = engine_mismatch(meta, trt.__version__, here["compute_capability"], here["gpu"])
            if problem:
                raise ArtifactError(f"engine {self.path.name} cannot run here: {problem}",
                                    "rebuild it on this machine with `lfcc-pipeline build --onnx ...`")  # fmt: skip
        self.precision = meta.get("precision", "unknown")
        self.meta = meta
        self.logger = make_logger(trt)
        try:
            blob = self.path.read_bytes()
        except OSError as e:
            raise ArtifactError(f"cannot read engine {self.path}: {e.strerror}", "check the path") from e
        mark = self.logger.mark()
        runtime = trt.Runtime(self.logger)
        if meta.get("dla_core") is not None:  # an engine built for DLA runs on the core it was built for
            runtime.DLA_core = int(meta["dla_core"])
        self.engine = runtime.deserialize_cuda_engine(blob)
        if self.engine is None:  # TensorRT returns None (no exception) for foreign or corrupt plans
            reason = self.logger.reason(mark, "not a TensorRT engine for this setup")
            raise ArtifactError(f"TensorRT cannot load {self.path.name}: {reason}",
                                "rebuild the engine on this machine with this TensorRT version")  # fmt: skip
        mark = self.logger.mark()
        self.context = self.engine.create_execution_context()
        if self.context is None:  # TensorRT returns None when it cannot allocate the context's memory
            reason = self.logger.reason(mark, "no reason logged")
            raise ArtifactError(f"TensorRT cannot create an execution context for {self.path.name}: {reason}",
                                "free GPU memory (other processes, a smaller --max-batch) and retry")  # fmt: skip
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == mode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == mode.OUTPUT]
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise ConfigError(f"{self.path.name} has inputs {self.inputs} and outputs {self.outputs}",
                              "the runner expects one image input and one logits output")  # fmt: skip
        self.torch_device = torch.device("cuda", device_index)
        self.device = f"cuda:{device_index}"
        self.stream = torch.cuda.Stream(device=self.torch_device)
        self.in_dtype = torch_dtype(trt, self.engine.get_tensor_dtype(self.inputs[0]))
        self.out_dtype = torch_dtype(trt, self.engine.get_tensor_dtype(self.outputs[0]))
        self.cuda_graph = cuda_graph
        self._bound: tuple[int, ...] | None = None
        self._out = None
        self._graph = None
        self._graph_input = None
        self.max_batch = int(self.profile_range()[2][0])

    def profile_range(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        return tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(self.inputs[0], 0))

    def prepare(self, batch: np.ndarray):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.torch_device, dtype=self.in_dtype, non_blocking=True)
        return x.contiguous()

    def _bind(self, x) -> None:
        """Set the input shape and both addresses (allocating the output) when the shape changes."""
        import torch

        shape = tuple(x.shape)
        if shape != self._bound:
            lo, _, hi = self.profile_range()
            if not all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
                raise ConfigError(f"input shape {shape} is outside the engine's profile {lo}..{hi}",
                                  "rebuild with a wider --min-batch/--max-batch")  # fmt: skip
            if not self.context.set_input_shape(self.inputs[0], shape):
                raise ConfigError(f"TensorRT rejected input shape {shape}", "check the engine's profile")
            missing = self.context.infer_shapes()
            if missing:
                raise ConfigError(f"TensorRT cannot infer shapes for {missing}", "check the engine's inputs")
            out_shape = tuple(self.context.get_tensor_shape(self.outputs[0]))
            self._out = torch.empty(out_shape, dtype=self.out_dtype, device=self.torch_device)
            self._graph = None
            self._bound = shape
        self.context.set_tensor_address(self.inputs[0], x.data_ptr())
        self.context.set_tensor_address(self.outputs[0], self._out.data_ptr())

    def run(self, native_input: Any):
        import torch

        x = native_input
        self.stream.wait_stream(torch.cuda.current_stream(self.torch_device))
        x.record_stream(self.stream)  # the caching allocator must not reuse x before TensorRT has read it
        with torch.cuda.stream(self.stream):
            if self.cuda_graph:
                return self._run_graph(x)
            self._bind(x)
            self._execute()
        return self._out

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise ArtifactError(f"TensorRT execution of {self.path.name} failed", "see the TensorRT log above")

    def _run_graph(self, x):
        import torch

        if self._graph is None or self._graph_input is None or tuple(x.shape) != tuple(self._graph_input.shape):
            self._graph_input = x.clone()
            self._bind(self._graph_input)
            self._execute()  # once before capture (deferred initialisation happens here, not in the graph)
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph, stream=self.stream):
                    ok = self.context.execute_async_v3(self.stream.cuda_stream)
            except RuntimeError as e:
                ok = False
                _logger.warning("CUDA graph capture failed (%s); running without graphs", e)
            if not ok:
                self.cuda_graph = False
                self._bind(x)
                self._execute()
                return self._out
            self._graph = graph
        else:
            self._graph_input.copy_(x, non_blocking=True)
        self._graph.replay()
        return self._out

    def synchronize(self) -> None:
        self.stream.synchronize()

    def to_numpy(self, native_output: Any) -> np.ndarray:
        self.stream.synchronize()
        return native_output.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tensorrt": self.trt.__version__, "engine": str(self.path)}
