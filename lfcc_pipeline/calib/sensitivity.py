"""Layer sensitivity of an INT8 Q/DQ model, measured with ONNX Runtime on held-out images.

For each analysed layer: the all-INT8 model with ONLY that layer kept in higher precision
(calib/layers.py `keep_float`: FP32 in these models), against the FP32 model on the same images:
top-1 agreement and the relative output error ||logits - logits_fp32|| / ||logits_fp32||. This
measures what keeping a layer buys, which is the question the budget search asks (the other choice,
quantizing only that layer, measures a layer's error in isolation and misses interactions).

Cost is bounded: layers are ranked first by a cheap proxy (the relative quantization error of the
layer's own Q/DQ'd inputs and weight, from one run of the model with every layer in float on a few
images), and only the `max_layers` highest are measured, on at most the images given.
"""

from __future__ import annotations

import numpy as np

from lfcc_pipeline.calib import graph
from lfcc_pipeline.calib.checks import constants
from lfcc_pipeline.calib.layers import Layer, clamps_at_zero, dequantized, keep_float, quantizable_layers
from lfcc_pipeline.core.errors import ConfigError

DEFINITION = (
    "each layer: the all-INT8 model with only that layer kept in higher precision, against the FP32 model on "
    "held-out validation images; agreement_gain = its top-1 agreement with FP32 minus the all-INT8 model's"
)
PROXY_IMAGES = 32


def run_logits(model, x: np.ndarray, threads: int | None = None, batch: int = 64) -> np.ndarray:
    """Logits of an ONNX model (ModelProto, bytes or path) on `x`, by ONNX Runtime's CPU provider."""
    src = model.SerializeToString() if hasattr(model, "SerializeToString") else model
    sess = graph.session(src, threads)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)])


def compare(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(top-1 agreement in %, relative L2 output error) of `out` against `ref`."""
    agree = 100.0 * float((out.argmax(1) == ref.argmax(1)).mean())
    err = float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-12))
    return round(agree, 3), round(err, 5)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def _fake_quant(x: np.ndarray, q, consts: dict[str, np.ndarray]) -> np.ndarray:
    scale = float(consts[q.input[1]].ravel()[0])
    zp_arr = consts[q.input[2]] if len(q.input) > 2 and q.input[2] else np.zeros(1, np.uint8)
    info = np.iinfo(zp_arr.dtype)
    zp = float(zp_arr.ravel()[0])
    return (np.clip(np.round(x / scale) + zp, info.min, info.max) - zp) * scale


def proxy_errors(model, fp32: dict, layers: list[Layer], x: np.ndarray, threads: int | None = None) -> dict[str, float]:
    """Per layer: relative quantization error of its activation inputs plus that of its weights."""
    import onnx

    producer = {o: n for n in model.graph.node for o in n.output}
    consts = constants(model)
    acts: dict[str, list] = {}  # layer -> its activation QuantizeLinear nodes
    err = {layer.node: 0.0 for layer in layers}
    nodes = {n.name: n for n in model.graph.node}
    for layer in layers:
        acts[layer.node] = []
        for i, t in enumerate(nodes[layer.node].input):
            dq = producer.get(t)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear" and q.input[0] not in consts:
                if q.input[1] in consts and consts[q.input[1]].size == 1:
                    acts[layer.node].append(q)
            elif dq.input[0] in consts and (layer.node, i) in fp32 and i == 1:
                err[layer.node] += _rel(dequantized(dq, consts), fp32[(layer.node, i)])
    twin = keep_float(model, [layer.node for layer in layers], fp32, layers)
    wanted = sorted({q.input[0] for qs in acts.values() for q in qs})
    present = {o.name for o in twin.graph.output}
    for name in wanted:
        if name not in present:
            twin.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    sess = graph.session(twin.SerializeToString(), threads)
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x}), strict=True))
    for layer in layers:
        for q in acts[layer.node]:
            value = outs[q.input[0]].astype(np.float32)
            ref = np.maximum(value, 0) if clamps_at_zero(q, consts) else value
            err[layer.node] += _rel(_fake_quant(value, q, consts), ref)
    return {k: round(v, 5) for k, v in err.items()}


def no_layers_error(label: str) -> ConfigError:
    return ConfigError(
        f"{label} has no quantizable layer (no Conv/Gemm/MatMul reads a DequantizeLinear), so there is no layer "
        "sensitivity to measure",
        "run sensitivity on an INT8 Q/DQ model of a network with convolutions or linear layers",
    )


def analyse(
    model,
    fp32: dict,
    x: np.ndarray,
    ref: np.ndarray,
    max_layers: int = 16,
    threads: int | None = None,
    label: str = "the model",
) -> dict:
    """Sensitivity of the Q/DQ `model` on inputs `x` against FP32 logits `ref` (see the module docstring)."""
    layers = quantizable_layers(model)
    if not layers:
        raise no_layers_error(label)
    base_agree, base_err = compare(run_logits(model, x, threads), ref)
    proxy = proxy_errors(model, fp32, layers, x[:PROXY_IMAGES], threads)
    chosen = sorted(layers, key=lambda layer: (-proxy[layer.node], layer.node))[:max_layers]
    rows = []
    for layer in chosen:
        agree, err = compare(run_logits(keep_float(model, [layer.node], fp32, layers), x, threads), ref)
        rows.append({**layer.describe(), "proxy": proxy[layer.node], "agreement": agree,
                     "agreement_gain": round(agree - base_agree, 3), "output_error": err})  # fmt: skip
    rows.sort(key=lambda r: (-r["agreement_gain"], r["output_error"], r["node"]))
    return {
        "definition": DEFINITION,
        "images": int(len(x)),
        "all_int8": {"agreement": base_agree, "output_error": base_err},
        "quantizable_layers": len(layers),
        "analysed": len(rows),
        "selection": f"the {len(rows)} of {len(layers)} layers with the largest quantization-error proxy "
        f"(relative error of the layer's Q/DQ'd inputs and weight on {min(PROXY_IMAGES, len(x))} images)",
        "layers": rows,
    }
