"""The quantizable layers of a Q/DQ model, their readable names, and keeping some of them in float.

A *layer* is a weighted op (Conv, ConvTranspose, Gemm, MatMul) with at least one input coming
through a DequantizeLinear. Keeping a layer in higher precision (`keep_float`) is graph surgery on
the calibrated Q/DQ model, so every other layer keeps its calibrated scales:
- its activation inputs are wired to the float tensor in front of their QuantizeLinear (other
  consumers of that Q/DQ pair keep it), through a Relu where the pair clamps at zero (zero-point at
  the type's minimum: ONNX Runtime's quantizer folds a ReLU into such a pair and removes the Relu),
- its weight and bias become the FP32 tensors of the same node in the FP32 export (ONNX Runtime's
  quantizer keeps node names), or, for a model quantized in-graph (ModelOpt), the float tensor in
  front of the weight's QuantizeLinear,
- Q/DQ nodes on its output stay: they feed the next INT8 layer.
The kept layer then runs in the precision outside the Q/DQ regions (FP32 in these models).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from lfcc_pipeline.calib.checks import WEIGHTED_OPS, constants
from lfcc_pipeline.calib.graph import drop_unused_initializers, fold_identity_initializers, topological_sort

KEPT_META = "lfcc.kept_layers"  # ONNX metadata: JSON list of {"node", "module"} kept in higher precision


@dataclass(frozen=True)
class Layer:
    node: str  # the ONNX node name
    module: str  # the PyTorch module path it came from ("" where the name does not say)
    op_type: str

    def label(self) -> str:
        return f"{self.module} ({self.node})" if self.module else self.node

    def describe(self) -> dict:
        return {"node": self.node, "module": self.module, "op_type": self.op_type}


def module_path(node_name: str) -> str:
    """The PyTorch module path in a TorchScript-export node name: "/layer1/layer1.0/conv1/Conv" ->
    "layer1.0.conv1" (each scope segment repeats its parent's name for container children)."""
    if not node_name.startswith("/"):
        return ""
    segments = node_name.strip("/").split("/")[:-1]  # the last one is the op ("Conv", "MatMul_1")
    parts: list[str] = []
    prev = None
    for seg in segments:
        parts.append(seg[len(prev) + 1 :] if prev and seg.startswith(prev + ".") else seg)
        prev = seg
    return ".".join(parts)


def _producers(model) -> dict:
    return {o: n for n in model.graph.node for o in n.output}


def quantizable_layers(model) -> list[Layer]:
    """Weighted ops with a dequantized input, in graph order."""
    producer = _producers(model)
    layers = []
    for node in model.graph.node:
        if node.op_type not in WEIGHTED_OPS:
            continue
        if any(producer.get(t) is not None and producer[t].op_type == "DequantizeLinear" for t in node.input):
            layers.append(Layer(node.name, module_path(node.name), node.op_type))
    return layers


def float_constants(fp32_model) -> dict[tuple[str, int], np.ndarray]:
    """(node name, input index) -> the FP32 constant a weighted op of the FP32 model reads there."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(fp32_model)
    fold_identity_initializers(model)
    consts = constants(model)
    return {
        (node.name, i): consts[t]
        for node in model.graph.node
        if node.op_type in WEIGHTED_OPS
        for i, t in enumerate(node.input)
        if t in consts
    }


def dequantized(dq, consts: dict[str, np.ndarray]) -> np.ndarray:
    """The float value of a DequantizeLinear of a constant (per-tensor or per-axis)."""
    from onnx import helper

    q = consts[dq.input[0]].astype(np.float32)
    scale = consts[dq.input[1]].astype(np.float32)
    zp = consts[dq.input[2]].astype(np.float32) if len(dq.input) > 2 and dq.input[2] else np.zeros_like(scale)
    if scale.size > 1:
        axis = next((helper.get_attribute_value(a) for a in dq.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q - zp) * scale).astype(np.float32)


def keep_float(model, keep: list[str], fp32: dict[tuple[str, int], np.ndarray], layers: list[Layer] | None = None):
    """A copy of the Q/DQ `model` with the nodes named in `keep` in float (see the module docstring)."""
    import onnx
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    producer, consts = _producers(out), constants(out)
    wanted, relus = set(keep), {}
    for node in out.graph.node:
        if node.name not in wanted:
            continue
        for i, t in enumerate(node.input):
            dq = producer.get(t)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = _float_input(out, q, consts, relus)
                continue
            value = fp32.get((node.name, i))
            if value is None or dq.input[0] not in consts or value.shape != consts[dq.input[0]].shape:
                value = dequantized(dq, consts)  # no FP32 twin: the dequantized constant
            name = f"{node.name}:{i}:fp32"
            out.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
            node.input[i] = name
    prune(out)
    topological_sort(out)
    by_name = {layer.node: layer for layer in (layers or quantizable_layers(model))}
    kept = [by_name[n].describe() if n in by_name else {"node": n, "module": module_path(n)} for n in keep]
    _set_kept(out, kept)
    return out


def clamps_at_zero(q, consts: dict[str, np.ndarray]) -> bool:
    if len(q.input) < 3 or not q.input[2] or q.input[2] not in consts:
        return False
    zp = consts[q.input[2]]
    return zp.dtype.kind in "ui" and zp.size == 1 and int(zp.ravel()[0]) == np.iinfo(zp.dtype).min


def _float_input(model, q, consts: dict[str, np.ndarray], relus: dict[str, str]) -> str:
    """The float tensor a QuantizeLinear `q` reads, through a (shared) Relu where `q` clamps at zero."""
    from onnx import helper

    if not clamps_at_zero(q, consts):
        return q.input[0]
    if q.name not in relus:
        relus[q.name] = f"{q.input[0]}:relu"
        model.graph.node.append(helper.make_node("Relu", [q.input[0]], [relus[q.name]], name=f"{q.name}:relu"))
    return relus[q.name]


def _set_kept(model, kept: list[dict]) -> None:
    from lfcc_pipeline.core.onnx_meta import set_metadata

    set_metadata(model, {KEPT_META: json.dumps(kept)})


def kept_layers(model) -> list[dict]:
    """The layers a model records as kept in higher precision ([] for an all-INT8 model)."""
    from lfcc_pipeline.core.onnx_meta import metadata

    raw = metadata(model).get(KEPT_META)
    return json.loads(raw) if raw else []


def prune(model) -> None:
    """Drop nodes whose outputs nothing reads, then initializers nothing reads."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    while True:
        used = {t for n in graph.node for t in n.input} | outputs
        keep = [n for n in graph.node if any(o in used for o in n.output)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    drop_unused_initializers(graph)
