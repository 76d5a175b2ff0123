"""The FP16-outside-Q/DQ form of a TensorRT-flavour INT8 model, for strongly typed TensorRT builds.

A strongly typed network (TensorRT 11 always, TensorRT 10 with --strongly-typed) runs every tensor in
the type the ONNX gives it, so the FP32-outside-Q/DQ preview model (calib/<role>.int8.trt.onnx, what
ONNX Runtime checks on CPU) would run each unquantized layer in FP32. This form keeps the same Q/DQ
(same INT8 values and scales) and makes everything else FP16: Q/DQ scales become FP16 (opset 19
allows FP16 Q/DQ), weights of the layers kept in higher precision and biases FP16, while the
numerically sensitive ops (calib/fp16.py FP32_OPS) and nodes with large values stay FP32, inputs
and outputs FP32, as in <role>.fp16.onnx. Written as calib/<role>.int8.trt-fp16.onnx.

ONNX Runtime's CPU provider runs this model, but its FP16 QuantizeLinear rounds differently from
TensorRT; `reference_logits` runs it with the `onnx` reference evaluator instead, to check it
against the preview model on a few images.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from lfcc_pipeline.calib import graph
from lfcc_pipeline.calib.fp16 import FP32_OPS, RANGE_IMAGES, _dedupe, out_of_range_nodes
from lfcc_pipeline.calib.qdq import Produced, ort_version

QDQ_OPSET = 19  # QuantizeLinear/DequantizeLinear with FP16 inputs and scales


# reductions whose `axes` moved from an attribute to an input in opset 18
_AXES_INPUT_18 = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
                  "ReduceLogSumExp", "ReduceSumSquare")  # fmt: skip


def _raise_opset(model, version: int) -> None:
    """Raise the default-domain opset to `version`, rewriting what changed on the way (reductions' axes)."""
    current = min(
        (o.version for o in model.opset_import if (o.domain or "") in graph.STANDARD_DOMAINS), default=version
    )
    if current < 18 <= version:
        _axes_to_inputs(model)
    for o in model.opset_import:
        if (o.domain or "") in graph.STANDARD_DOMAINS and o.version < version:
            o.version = version


def _axes_to_inputs(model) -> None:
    from onnx import numpy_helper

    for i, node in enumerate(model.graph.node):
        if node.op_type not in _AXES_INPUT_18 or node.domain not in ("", "ai.onnx"):
            continue
        axes = next((a for a in node.attribute if a.name == "axes"), None)
        if axes is None:
            continue
        name = f"{node.name or node.op_type}_{i}_axes"
        model.graph.initializer.append(numpy_helper.from_array(np.array(list(axes.ints), np.int64), name))
        node.attribute.remove(axes)
        while len(node.input) < 1:
            node.input.append("")
        node.input.append(name)


def qdq_fp16(src: Path, dst: Path, data: np.ndarray, label: str) -> Produced:
    """Write the FP16-outside-Q/DQ form of the TensorRT-flavour Q/DQ model `src` to `dst` (ranges on `data`)."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    t0 = time.perf_counter()
    model = graph.load(src)
    meta = graph.metadata(model)
    blocked = out_of_range_nodes(model, data[:RANGE_IMAGES])
    _raise_opset(model, QDQ_OPSET)
    with graph.quiet_tools():
        out = convert_float_to_float16(
            model,
            keep_io_types=True,
            op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS)),
            node_block_list=blocked,
        )
    _dedupe(out)
    graph.topological_sort(out)
    del out.graph.value_info[:]  # the converter leaves stale FP32 entries; types are inferred again
    graph.strip_unused_opsets(out)
    graph.set_metadata(out, {**meta, "lfcc.high_precision": "fp16", "lfcc.flavour": "tensorrt-strongly-typed"})
    graph.save(out, dst)
    notes = [f"{len(blocked)} node(s) kept FP32 for range"] if blocked else []
    return Produced(dst, "int8.trt-fp16", f"onnxruntime {ort_version()} float16 converter", time.perf_counter() - t0,
                    notes)  # fmt: skip


def reference_logits(path: Path, x: np.ndarray) -> np.ndarray:
    """Logits of an ONNX model by the `onnx` reference evaluator (slow: a few images)."""
    from onnx.reference import ReferenceEvaluator

    model = graph.load(path)
    name, _ = graph.input_info(model)
    return np.asarray(ReferenceEvaluator(model).run(None, {name: x})[0], dtype=np.float32)


def fp16_outside_problems(model) -> list[str]:
    """What an FP16-outside-Q/DQ model must be: TensorRT's Q/DQ rules, FP16 Q/DQ scales, FP32_OPS in FP32,
    FP32 graph inputs/outputs, and every other activation FP16 (FP32 only around FP32_OPS, via Casts)."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST

    from lfcc_pipeline.calib.checks import fp16_problems, tensor_types, trt_qdq_problems

    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    problems = trt_qdq_problems(model) + fp16_problems(model, FP32_OPS)
    types = tensor_types(model)
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and types.get(node.input[1]) != f16:
            problems.append(f"{node.name}: scale is not float16")
    inits = {i.name for i in model.graph.initializer}
    io = {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
    fp32_side = {"Cast", *FP32_OPS, *DEFAULT_OP_BLOCK_LIST}
    readers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for t in node.input:
            readers.setdefault(t, set()).add(node.op_type)
    for node in model.graph.node:
        for t in node.output:
            outside = node.op_type not in fp32_side and not readers.get(t, set()) <= fp32_side
            if types.get(t) == f32 and t not in inits and t not in io and outside:
                problems.append(f"{node.op_type} {node.name} output {t} is float32 outside the FP32 ops")
    return problems
