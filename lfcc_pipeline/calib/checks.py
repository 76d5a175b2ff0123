"""What TensorRT needs from a Q/DQ or FP16 graph, checked on the ONNX file itself.

TensorRT's explicit quantization takes symmetric INT8 only (every zero-point 0, INT8 not UINT8),
per-tensor activation scales, per-channel weight scales on the output-channel axis (opset >= 13)
and float biases. An FP16 model for TensorRT 11 keeps FP32 inputs/outputs here and runs the
numerically sensitive ops (calib/fp16.py FP32_OPS) in FP32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def constants(model) -> dict[str, np.ndarray]:
    """Initializers and Constant-node values by tensor name."""
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _attr(node, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _out_channel_axis(node, rank: int) -> int:
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        return 0 if _attr(node, "transB", 0) else 1
    return rank - 1  # MatMul: B is (..., K, N)


@dataclass
class WeightQuant:
    node: str
    op_type: str
    axis: int | None  # the DequantizeLinear axis (None: per-tensor)
    expected_axis: int
    scales: int  # number of scale values
    channels: int  # output channels of the weight


def weight_quantization(model) -> tuple[list[WeightQuant], int]:
    """(how each quantized weighted op's weight is dequantized, number of weighted ops with a constant weight)."""
    consts = constants(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    found, total = [], 0
    for node in model.graph.node:
        if node.op_type not in WEIGHTED_OPS or len(node.input) < 2:
            continue
        dq = producer.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear":
            if node.input[1] in consts:
                total += 1
            continue
        src = dq.input[0]
        q = producer.get(src)
        if q is not None and q.op_type == "QuantizeLinear":
            src = q.input[0]
        weight = consts.get(src)
        if weight is None:  # an activation x activation MatMul (attention), not a weight
            continue
        total += 1
        scale = np.atleast_1d(consts.get(dq.input[1], np.zeros(0)))
        axis = _attr(dq, "axis", 1) if scale.size > 1 else None
        expected = _out_channel_axis(node, weight.ndim)
        if axis is not None and axis < 0:
            axis += weight.ndim
        found.append(WeightQuant(node.name, node.op_type, axis, expected, int(scale.size), int(weight.shape[expected])))
    return found, total


def trt_qdq_problems(model) -> list[str]:
    """Everything in a Q/DQ model that TensorRT's explicit quantization would reject."""
    from lfcc_pipeline.calib.graph import opset

    problems = []
    if opset(model) < 13:
        problems.append(f"opset {opset(model)} < 13 (per-channel Q/DQ needs 13)")
    consts = constants(model)
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if not qdq:
        problems.append("no QuantizeLinear/DequantizeLinear nodes")
    for node in qdq:
        if len(node.input) > 2 and node.input[2]:
            zp = consts.get(node.input[2])
            if zp is None:
                problems.append(f"{node.name}: zero-point is not a constant")
            elif zp.dtype != np.int8:
                problems.append(f"{node.name}: zero-point type {zp.dtype} (TensorRT takes int8)")
            elif np.any(zp != 0):
                problems.append(f"{node.name}: non-zero zero-point (TensorRT is symmetric only)")
        scale = consts.get(node.input[1])
        if scale is None:
            problems.append(f"{node.name}: scale is not a constant")
        elif np.any(scale <= 0):
            problems.append(f"{node.name}: non-positive scale")
        if node.op_type == "DequantizeLinear" and consts.get(node.input[0], np.zeros(0, np.int8)).dtype == np.int32:
            problems.append(f"{node.name}: INT32 DequantizeLinear (a quantized bias; TensorRT needs float biases)")
        if node.op_type == "QuantizeLinear" and node.input[0] not in consts and scale is not None and scale.size > 1:
            problems.append(f"{node.name}: per-channel activation scale (TensorRT takes per-tensor activations)")
    weights, total = weight_quantization(model)
    if total and not weights:
        problems.append("no weight is quantized")
    for w in weights:
        if w.axis is None and w.channels > 1:
            problems.append(f"{w.node}: per-tensor weight scale (want per-channel on axis {w.expected_axis})")
        elif w.axis is not None and (w.axis != w.expected_axis or w.scales != w.channels):
            problems.append(
                f"{w.node}: weight scale axis {w.axis} x{w.scales}, want axis {w.expected_axis} x{w.channels}"
            )
    return problems


def tensor_types(model) -> dict[str, int]:
    """Element type of every typed tensor (inputs, outputs, inferred value_info, initializers)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {i.name: i.data_type for i in g.initializer}
    for v in (*g.input, *g.output, *g.value_info):
        if v.type.HasField("tensor_type"):
            types[v.name] = v.type.tensor_type.elem_type
    return types


def fp16_problems(model, fp32_ops: tuple[str, ...]) -> list[str]:
    """An FP16 model should: take/return FP32, hold FP16 weights, run `fp32_ops` in FP32."""
    import onnx

    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    problems = []
    types = tensor_types(model)
    inits = {i.name for i in model.graph.initializer}
    for v in (*[i for i in model.graph.input if i.name not in inits], *model.graph.output):
        if v.type.tensor_type.elem_type != f32:
            problems.append(f"graph input/output {v.name} is not float32")
    if not any(i.data_type == f16 for i in model.graph.initializer):
        problems.append("no float16 initializer (weights were not converted)")
    for node in model.graph.node:
        if node.op_type in fp32_ops:
            for t in (node.input[0], node.output[0]):
                if types.get(t) == f16:
                    problems.append(f"{node.op_type} {node.name} runs in float16 ({t})")
    return problems


def verify_produced(produced, label: str) -> None:
    """StageFailed unless a made model (calib.qdq.Produced) is what its flavour promises: TensorRT
    Q/DQ rules, FP16 with the sensitive ops in FP32, or a CPU model with Q/DQ nodes."""
    from lfcc_pipeline.calib import graph
    from lfcc_pipeline.calib.fp16 import FP32_OPS
    from lfcc_pipeline.core.errors import StageFailed

    model = graph.load(produced.path)
    if produced.flavour == "int8.trt":
        problems = trt_qdq_problems(model)
    elif produced.flavour == "fp16":
        problems = fp16_problems(model, FP32_OPS)
    else:
        problems = [] if any(n.op_type == "QuantizeLinear" for n in model.graph.node) else ["no Q/DQ nodes"]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise StageFailed(
            f"{label} {produced.flavour} model ({produced.tool}) fails its check: {'; '.join(problems[:3])}{more}",
            "try --calib-tool "
            + ("ort" if produced.tool.startswith("modelopt") else "modelopt")
            + " and report this with --debug output",
        )
