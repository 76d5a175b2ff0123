"""FP16 ONNX models: FP16 weights and activations, sensitive ops in FP32, FP32 inputs and outputs.

TensorRT 11 builds strongly typed networks only (no FP16 builder flag), so the precision has to be
in the ONNX file. Ops whose FP16 result is unsafe stay FP32 (FP32_OPS: normalisations, softmax,
sum/mean reductions and the Pow/Sqrt of decomposed norms), and so does every node whose tensors
exceed DATA_MAX in magnitude on the calibration images (AutoCast's default threshold).

Made by NVIDIA ModelOpt AutoCast (`convert_to_mixed_precision`) where it is installed, else by
ONNX Runtime's float16 converter (`onnxruntime.transformers.float16`) with the same op list, plus
node names from our own range check and a repair of its duplicated Cast nodes.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from lfcc_pipeline.calib import graph
from lfcc_pipeline.calib.qdq import MODELOPT_HINT, Produced, QuantSpec, modelopt_version, ort_version
from lfcc_pipeline.core.errors import ConfigError, tool_failures

_logger = logging.getLogger(__name__)

FP32_OPS = (
    "LayerNormalization",
    "GroupNormalization",
    "InstanceNormalization",
    "LpNormalization",
    "Softmax",
    "LogSoftmax",
    "ReduceMean",
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceProd",
    "GlobalAveragePool",
    "Pow",
    "Sqrt",
)
DATA_MAX = 512.0  # |activation| above which a node stays FP32 (ModelOpt AutoCast's default data_max)
INIT_MAX = 65504.0  # |initializer| above which a node stays FP32 (the FP16 maximum)
RANGE_IMAGES = 64  # calibration images used for the range check


def fp16_tool(spec: QuantSpec) -> str:
    if spec.tool == "modelopt" and modelopt_version() is None:
        raise ConfigError("--calib-tool modelopt but nvidia-modelopt is not installed", MODELOPT_HINT)
    if spec.tool == "ort" or modelopt_version() is None:
        return "ort"
    return "modelopt"


def _name_nodes(model) -> None:
    seen = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def out_of_range_nodes(model, data: np.ndarray) -> list[str]:
    """Nodes with a float input/output above DATA_MAX on `data`, or an initializer above INIT_MAX."""
    from onnx import numpy_helper

    ranges = graph.float_ranges(model, data)
    inits = {i.name: i for i in model.graph.initializer}
    big = []
    for node in model.graph.node:
        if any(ranges.get(t, 0.0) > DATA_MAX for t in (*node.input, *node.output)):
            big.append(node.name)
            continue
        for t in node.input:
            if t in inits:
                arr = numpy_helper.to_array(inits[t])
                if arr.dtype == np.float32 and arr.size and float(np.abs(arr).max()) > INIT_MAX:
                    big.append(node.name)
                    break
    return big


def _dedupe(model) -> None:
    """Drop exact duplicate nodes and value_infos (the ORT converter emits one Cast per blocked consumer)."""
    seen, keep = {}, []
    for node in model.graph.node:
        if node.name in seen:
            if seen[node.name] != node.SerializeToString():
                node.name = f"{node.name}_{len(keep)}"
            else:
                continue
        seen[node.name] = node.SerializeToString()
        keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    infos, names = [], set()
    for v in model.graph.value_info:
        if v.name not in names:
            names.add(v.name)
            infos.append(v)
    del model.graph.value_info[:]
    model.graph.value_info.extend(infos)


def _ort_convert(model, data: np.ndarray):
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    blocked_nodes = out_of_range_nodes(model, data[:RANGE_IMAGES])
    if blocked_nodes:
        _logger.debug("fp16: %d node(s) stay FP32 for range: %s", len(blocked_nodes), blocked_nodes[:20])
    with graph.quiet_tools():
        out = convert_float_to_float16(
            model,
            keep_io_types=True,
            op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS)),
            node_block_list=blocked_nodes,
        )
    _dedupe(out)
    graph.topological_sort(out)
    return out, len(blocked_nodes)


def _modelopt_convert(path: Path, data: np.ndarray, tmp: Path, present: set[str]):
    import modelopt.onnx.autocast as autocast
    from modelopt.onnx.autocast import convert_to_mixed_precision

    if hasattr(autocast, "configure_logging"):  # its console handler holds the real stdout: set its level
        autocast.configure_logging("ERROR")

    name, _ = graph.input_info(graph.load(path))
    ref = tmp / "reference_inputs.npz"
    np.savez(ref, **{name: data[:RANGE_IMAGES]})
    wanted = {
        "onnx_path": str(path),
        "low_precision_type": "fp16",
        "keep_io_types": True,
        "op_types_to_exclude": [t for t in FP32_OPS if t in present],
        "data_max": DATA_MAX,
        "init_max": INIT_MAX,
        "calibration_data": str(ref),
        "providers": ["cpu"],
    }
    params = inspect.signature(convert_to_mixed_precision).parameters
    with graph.quiet_tools():
        return convert_to_mixed_precision(**{k: v for k, v in wanted.items() if k in params})


def convert_fp16(src: Path, dst: Path, data: np.ndarray, spec: QuantSpec, label: str) -> Produced:
    """Write the FP16 model of `src` to `dst` (ranges checked on `data`, the model's calibration inputs)."""
    import onnx

    t0 = time.perf_counter()
    tool = fp16_tool(spec)
    source = graph.load(src)
    source_meta = graph.metadata(source)
    model = graph.fold_identity_initializers(source)
    _name_nodes(model)
    present = {n.op_type for n in model.graph.node}
    notes = []
    hint = (
        "try --calib-tool ort" if tool == "modelopt" else "try --calib-tool modelopt"
    ) + "; --debug shows the traceback"
    with tool_failures(f"FP16 conversion of {label} ({tool})", hint):
        if tool == "modelopt":
            with tempfile.TemporaryDirectory(prefix="lfcc-fp16-") as tmp_dir:
                tidy = Path(tmp_dir) / "tidy.onnx"
                onnx.save(model, str(tidy))
                out = _modelopt_convert(tidy, data, Path(tmp_dir), present)
        else:
            out, n_blocked = _ort_convert(model, data)
            if n_blocked:
                notes.append(f"{n_blocked} node(s) kept FP32 for range")
    if spec.tool == "auto" and tool == "ort":
        notes.append("ONNX Runtime float16 converter (no ModelOpt)")
    tool_name = f"modelopt {modelopt_version()}" if tool == "modelopt" else f"onnxruntime {ort_version()}"
    graph.strip_unused_opsets(out)
    graph.set_metadata(out, {**source_meta, "lfcc.precision": "fp16", "lfcc.fp16_converter": tool_name})
    graph.save(out, dst)
    return Produced(dst, "fp16", tool_name, time.perf_counter() - t0, notes)
