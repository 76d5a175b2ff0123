"""INT8 explicit quantization (Q/DQ ONNX) in two flavours, from one calibration set.

- TensorRT flavour (`*.int8.trt.onnx`): symmetric INT8 (every zero-point 0), per-channel weights,
  opset >= 13, FP32 outside the Q/DQ regions. Made by NVIDIA ModelOpt
  (`modelopt.onnx.quantization.quantize`, which places Q/DQ the way TensorRT fuses them) where it
  is installed, else by ONNX Runtime's static quantizer with symmetric settings, Q/DQ on the inputs
  of Conv/ConvTranspose/Gemm/MatMul (TensorRT's placement recommendation) and float biases.
- Transformer graphs (ViT/DeiT/Swin/Mixer: a LayerNormalization or Softmax in the graph), both
  flavours: only the weighted ops (Conv/Gemm/MatMul with a constant weight: the Linear layers and
  the patch embedding) are quantized; attention's activation x activation MatMuls, LayerNorm,
  Softmax, GELU and the residual-stream adds stay in higher precision (see transformer_excludes).
- CPU flavour (`*.int8.cpu.onnx`): what ONNX Runtime's CPU provider runs fastest: U8S8 (uint8
  activations with a zero-point, int8 symmetric per-channel weights) Q/DQ after ONNX Runtime's
  pre-processing, so that it fuses into QLinearConv/QLinearMatMul kernels (see cpu_op_types).

Both read calibration batches from an in-memory array; calibration is strided one batch at a time,
so memory holds one batch of intermediate tensors (ONNX Runtime's path).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import logging
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lfcc_pipeline.calib import graph
from lfcc_pipeline.core.config import CalibConfig
from lfcc_pipeline.core.errors import ConfigError, tool_failures
from lfcc_pipeline.core.progress import progress

_logger = logging.getLogger(__name__)

TRT_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul")
TRANSFORMER_OPS = {"LayerNormalization", "Softmax"}
MODELOPT_HINT = "pip install 'lfcc-pipeline[modelopt]' (NVIDIA ModelOpt), or use --calib-tool ort"


@dataclass(frozen=True)
class QuantSpec:
    method: str = "entropy"  # max | entropy | percentile
    percentile: float = 99.99
    batch_size: int = 32
    tool: str = "auto"  # TensorRT flavour and FP16: auto (ModelOpt where installed) | modelopt | ort

    @classmethod
    def from_config(cls, c: CalibConfig) -> QuantSpec:
        """The spec the --calib-* options state (the one place a run's spec is made)."""
        return cls(method=c.method, percentile=c.percentile, batch_size=c.batch_size, tool=c.tool)


@dataclass
class Produced:
    """One written model and how it was made."""

    path: Path
    flavour: str  # int8.trt | int8.cpu | fp16
    tool: str  # e.g. "modelopt 0.47.0" or "onnxruntime 1.31.1"
    seconds: float
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {"tool": self.tool, "seconds": round(self.seconds, 2), **({"notes": self.notes} if self.notes else {})}


def modelopt_version() -> str | None:
    """The installed nvidia-modelopt version whose ONNX quantizer imports, else None."""
    if importlib.util.find_spec("modelopt") is None:
        return None
    try:
        return importlib.metadata.version("nvidia-modelopt")
    except importlib.metadata.PackageNotFoundError:
        return None


def ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def trt_quantizer(spec: QuantSpec) -> str:
    """Which tool makes the TensorRT flavour: "modelopt" or "ort" (ConfigError when impossible)."""
    have = modelopt_version() is not None
    if spec.tool == "modelopt":
        if not have:
            raise ConfigError("--calib-tool modelopt but nvidia-modelopt is not installed", MODELOPT_HINT)
        if spec.method == "percentile":
            raise ConfigError(
                "ModelOpt's INT8 calibration offers max and entropy, not percentile",
                "use --calib-method max or entropy, or --calib-tool ort",
            )
        return "modelopt"
    if spec.tool == "ort" or not have or spec.method == "percentile":
        return "ort"
    return "modelopt"


class ArrayReader:
    """An ONNX Runtime CalibrationDataReader over a float32 array, in batches, with a progress bar.

    Supports `set_range` (ONNX Runtime's strided calibration) and `get_first`/`rewind` (ModelOpt).
    """

    def __init__(self, input_name: str, data: np.ndarray, batch_size: int, desc: str = "calibrate") -> None:
        self.input_name, self.data, self.batch_size = input_name, data, batch_size
        self.n_batches = -(-len(data) // batch_size)
        self.start, self.stop, self.pos = 0, self.n_batches, 0
        self.bar = progress(desc=desc, total=self.n_batches, unit="batch")

    def __len__(self) -> int:
        return self.n_batches

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.stop, self.pos = start_index, min(end_index, self.n_batches), start_index

    def _batch(self, i: int) -> dict[str, np.ndarray]:
        return {self.input_name: self.data[i * self.batch_size : (i + 1) * self.batch_size]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= self.stop:
            return None
        batch = self._batch(self.pos)
        self.pos += 1
        self.bar.update(1)
        return batch

    def get_first(self) -> dict[str, np.ndarray]:
        return self._batch(0)

    def rewind(self) -> None:
        self.start, self.stop, self.pos = 0, self.n_batches, 0

    def __iter__(self):
        return self

    def __next__(self):
        batch = self.get_next()
        if batch is None:
            raise StopIteration
        return batch

    def close(self) -> None:
        self.bar.close()


def cpu_op_types(present: set[str]) -> list[str] | None:
    """Op types the CPU flavour quantizes: every op ONNX Runtime can (None) for CNNs; for graphs with
    transformer blocks only the weighted ops (Conv/Gemm/MatMul): the inputs of all of them, and the
    outputs of the Convs only, so that LayerNorm, GELU and the residual adds read float values from
    the Linear layers (ONNX Runtime fuses DQ -> MatMul into an integer MatMul with a float output) while
    convolutions still fuse into QLinearConv.

    Measured on test_vit (2 quick epochs on fashion-mini at 32 px, 1000 test images, top-1 agreement with
    FP32 / relative output error): Linear outputs quantized too 99.1% / 0.0094, Linear outputs float
    99.5% / 0.0055, no output quantized 99.6% / 0.0042; batch-1 latency (2 threads, best of 7 rounds on
    a shared machine) 0.162, 0.145 and 0.207 ms. Earlier, on the demo's convnext_atto, leaving the Conv
    outputs float made it 3.8x slower (2.07 vs 0.55 ms), hence their Q/DQ. No effect of reduce_range
    (7-bit weights) here: this EPYC has AVX512-VNNI, where U8S8 does not saturate (agreement 99.1 -> 99.2%
    with it). On ResNet18, quantizing every op is ~8% faster than the weighted ops alone.
    """
    if present & TRANSFORMER_OPS:
        return [t for t in TRT_OP_TYPES if t in present]
    return None


def transformer_excludes(model) -> list[str]:
    """Names of the MatMuls that read no constant (attention's Q.K^T and attn.V) in a transformer graph, else [].

    Measured on test_vit (2 quick epochs on fashion-mini at 32 px, 1000 test images, entropy calibration):
    TensorRT flavour with those MatMuls quantized 99.9% top-1 agreement with FP32 and relative output
    error 0.0049; without them 99.9% and 0.0037.
    """
    present = {n.op_type for n in model.graph.node}
    if not present & TRANSFORMER_OPS:
        return []
    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not consts & set(n.input)]


def _ort_method(method: str):
    from onnxruntime.quantization import CalibrationMethod

    return {"max": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy}.get(
        method, CalibrationMethod.Percentile
    )


def _pre_process(src: Path, dst: Path) -> None:
    """ONNX Runtime's quantization pre-processing (shape inference + basic, standard-op optimisations)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst))
    except Exception as e:  # symbolic shape inference fails on some graphs; ONNX shape inference suffices
        _logger.debug("symbolic shape inference failed (%s); retrying without it", e)
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)


def _ort_quantize(
    src: Path, dst: Path, data: np.ndarray, spec: QuantSpec, desc: str, trt: bool, op_types: list[str] | None
) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    model = graph.load(src)
    name, _ = graph.input_info(model)
    extra = {
        "ActivationSymmetric": trt,
        "WeightSymmetric": True,
        "CalibStridedMinMax": 1,  # one batch at a time: bounded memory for every method
        "CalibPercentile": spec.percentile,
    }
    if trt:
        extra.update(QuantizeBias=False)  # TensorRT takes float biases; it has no INT32 DequantizeLinear
    exclude = transformer_excludes(model)  # transformer blocks: attention's own MatMuls stay float
    if trt:  # Q/DQ on the inputs of the weighted ops only (TensorRT fuses them; outputs stay float)
        extra.update(
            OpTypesToExcludeOutputQuantization=list(TRT_OP_TYPES),
            QDQOpTypePerChannelSupportToAxis={"MatMul": 1},
        )
    elif op_types is not None:  # transformer blocks: the weighted ops only; Linear outputs stay float
        extra.update(
            OpTypesToExcludeOutputQuantization=["MatMul", "Gemm"],
            QDQOpTypePerChannelSupportToAxis={"MatMul": 1},
        )
    reader = ArrayReader(name, data, spec.batch_size, desc)
    try:
        with graph.quiet_tools():
            quantize_static(
                str(src),
                str(dst),
                reader,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=op_types,
                nodes_to_exclude=exclude,
                per_channel=True,
                reduce_range=False,
                activation_type=QuantType.QInt8 if trt else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=_ort_method(spec.method),
                extra_options=extra,
            )
    finally:
        reader.close()


def _modelopt_quantize(src: Path, dst: Path, data: np.ndarray, spec: QuantSpec, desc: str) -> None:
    """ModelOpt's INT8 quantizer, in a child process.

    ModelOpt patches onnxruntime.quantization process-wide (its calibrators, tensor ranges,
    session options); a child process keeps the ONNX Runtime quantizer in this one stock.
    """
    import concurrent.futures
    import multiprocessing

    inputs = dst.parent / f".{dst.name}.inputs.npy"
    np.save(inputs, data)
    try:
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            pool.submit(_modelopt_child, str(src), str(dst), str(inputs), spec, desc).result()
    except concurrent.futures.process.BrokenProcessPool as e:
        raise RuntimeError("the ModelOpt process died (out of memory?)") from e
    finally:
        inputs.unlink(missing_ok=True)
    if not dst.is_file():
        raise RuntimeError(f"ModelOpt wrote no model to {dst}")


def _modelopt_child(src: str, dst: str, inputs: str, spec: QuantSpec, desc: str) -> None:
    from modelopt.onnx.quantization import quantize

    data = np.load(inputs, mmap_mode="r")
    name, _ = graph.input_info(graph.load(Path(src)))
    reader = ArrayReader(name, data, spec.batch_size, desc)
    shape = "x".join(str(d) for d in (spec.batch_size, *data.shape[1:]))
    wanted = {
        "onnx_path": src,
        "quantize_mode": "int8",
        "calibration_method": spec.method,
        "calibration_data_reader": reader,
        "calibration_eps": ["cpu"],
        "output_path": dst,
        "log_level": "CRITICAL",
        # FP32 outside the INT8 regions, not ModelOpt's default FP16: onnxruntime 1.24 (which ModelOpt 0.47 pins)
        # rounds QuantizeLinear on FP16 inputs wrongly on the CPU, so the accuracy preview of an FP16-mixed
        # model would be off (measured: 71% vs 96% top-1 agreement with FP32 on test_resnet).
        "high_precision_dtype": "fp32",
    }
    attention = transformer_excludes(graph.load(Path(src)))
    if attention:  # transformer graphs: Q/DQ on the weighted ops only (as the ONNX Runtime path)
        wanted.update(disable_mha_qdq=True, nodes_to_exclude=[f"^{re.escape(n)}$" for n in attention])
    params = inspect.signature(quantize).parameters
    if "calibration_data_reader" not in params:  # older ModelOpt: hand over the array and the batch shape
        del wanted["calibration_data_reader"]
        wanted.update(calibration_data={name: np.asarray(data)}, calibration_shapes=f"{name}:{shape}")
    try:
        with graph.quiet_tools():
            quantize(**{k: v for k, v in wanted.items() if k in params})
    finally:
        reader.close()


def _finish(tmp_out: Path, dst: Path, source_meta: dict[str, str], extra_meta: dict[str, str]) -> None:
    model = graph.load(tmp_out)
    graph.strip_unused_opsets(model)
    graph.set_metadata(model, {**source_meta, **extra_meta})
    graph.save(model, dst)


def quantize_int8(src: Path, dst: Path, data: np.ndarray, spec: QuantSpec, flavour: str, label: str) -> Produced:
    """Write the `flavour` ("trt" or "cpu") INT8 Q/DQ model of `src` to `dst`, calibrated on `data`."""
    import onnx

    t0 = time.perf_counter()
    source = graph.load(src)
    source_meta = graph.metadata(source)
    tool = "ort" if flavour == "cpu" else trt_quantizer(spec)
    notes = []
    if flavour == "trt" and tool == "ort" and spec.tool == "auto":
        why = "percentile calibration" if spec.method == "percentile" and modelopt_version() else "no ModelOpt"
        notes.append(f"ONNX Runtime quantizer ({why})")
    desc = f"calibrate {label} int8.{flavour} ({spec.method})"
    with tempfile.TemporaryDirectory(prefix="lfcc-calib-") as tmp_dir:
        tmp = Path(tmp_dir)
        tidy = tmp / "tidy.onnx"
        model = graph.fold_identity_initializers(source)
        onnx.save(model, str(tidy))
        out = tmp / "quant.onnx"
        hint = "try another --calib-method" + (" or --calib-tool ort" if tool == "modelopt" else "")
        with tool_failures(f"INT8 quantization of {label} ({flavour} flavour, {tool})",
                           hint + "; --debug shows the traceback"):  # fmt: skip
            if tool == "modelopt":
                _modelopt_quantize(tidy, out, data, spec, desc)
            else:
                pre = tmp / "pre.onnx"
                _pre_process(tidy, pre)
                present = {n.op_type for n in graph.load(pre).graph.node}
                op_types = [t for t in TRT_OP_TYPES if t in present] if flavour == "trt" else cpu_op_types(present)
                _ort_quantize(pre, out, data, spec, desc, trt=flavour == "trt", op_types=op_types)
        version = modelopt_version() if tool == "modelopt" else ort_version()
        tool_name = f"{'modelopt' if tool == 'modelopt' else 'onnxruntime'} {version}"
        _finish(
            out,
            dst,
            source_meta,
            {
                "lfcc.precision": "int8",
                "lfcc.flavour": "tensorrt" if flavour == "trt" else "onnxruntime-cpu",
                "lfcc.calib_method": spec.method,
                "lfcc.high_precision": "fp32",
                "lfcc.calib_images": str(len(data)),
                "lfcc.quantizer": tool_name,
            },
        )
    return Produced(dst, f"int8.{flavour}", tool_name, time.perf_counter() - t0, notes)
