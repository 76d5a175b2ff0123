"""Transformer-aware Q/DQ placement: on a ViT only the weighted ops are quantized, and it stays accurate.

timm test_vit at 32 px trained for a few quick epochs on fashion-mini, calibrated on training images,
checked on held-out test images.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import timm
import torch

from lfcc_pipeline.calib import checks
from lfcc_pipeline.calib.qdq import QuantSpec, quantize_int8, transformer_excludes
from lfcc_pipeline.calib.sensitivity import compare, run_logits
from lfcc_pipeline.data.sources import load_dataset
from lfcc_pipeline.data.specs import parse_data_spec
from lfcc_pipeline.data.transforms import Normalization, to_float
from lfcc_pipeline.models.onnx_export import export_onnx

HIGHER_PRECISION = {"LayerNormalization", "Softmax", "Erf", "Add", "Mul", "Div"}  # norms, softmax, GELU, residuals


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    out = tmp_path_factory.mktemp("vit")
    ds = load_dataset(parse_data_spec("fashion-mini"))
    norm = Normalization((0.5,) * 3, (0.5,) * 3)
    x, y = norm(to_float(ds.train.images[:1536], 32)), ds.train.labels[:1536]
    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, num_classes=10, img_size=32)
    opt = torch.optim.AdamW(model.parameters(), 2e-3)
    for _ in range(2):
        for i in range(0, len(x), 64):
            loss = torch.nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    export_onnx(model, out / "vit.onnx", 32)
    calib = norm(to_float(ds.train.images[1536:1792], 32)).numpy()
    paths = {"fp32": out / "vit.onnx"}
    for flavour in ("trt", "cpu"):
        paths[flavour] = out / f"vit.{flavour}.onnx"
        quantize_int8(paths["fp32"], paths[flavour], calib, QuantSpec(method="entropy"), flavour, "vit")
    return paths, norm(to_float(ds.test.images[:500], 32)).numpy()


def _consumers(model):
    out: dict[str, list] = {}
    for n in model.graph.node:
        for t in n.input:
            out.setdefault(t, []).append(n)
    return out


@pytest.mark.parametrize("flavour", ["trt", "cpu"])
def test_only_weighted_ops_read_quantized_tensors(vit, flavour):
    paths, _ = vit
    model = onnx.load(paths[flavour])
    consts = checks.constants(model)
    attention = set(transformer_excludes(onnx.load(paths["fp32"])))
    assert len(attention) == 12  # two per block: Q.K^T and attn.V
    consumers = _consumers(model)
    dqs = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    readers = {n.op_type for dq in dqs for n in consumers.get(dq.output[0], [])}
    assert not readers & HIGHER_PRECISION, readers  # norms, softmax, GELU and residual adds read float values
    if flavour == "trt":
        assert readers <= {"Conv", "Gemm", "MatMul"}, readers  # nothing else computes on dequantized values
    else:  # the CPU flavour also quantizes the patch embedding's output (QLinearConv), read by reshapes
        assert readers <= {"Conv", "Gemm", "MatMul", "Shape", "Reshape", "Transpose", "Flatten"}, readers
    producer = {o: n for n in model.graph.node for o in n.output}

    def has_weight(node) -> bool:
        w = node.input[1]
        return w in consts or (producer.get(w) is not None and producer[w].op_type == "DequantizeLinear"
                               and producer[w].input[0] in consts)  # fmt: skip

    for dq in dqs:
        for n in consumers.get(dq.output[0], []):
            if n.op_type in ("Conv", "Gemm", "MatMul"):
                assert n.name not in attention and has_weight(n), n.name  # a Linear/Conv, not attention's MatMuls
    ops = {n.op_type for n in model.graph.node}
    assert {"LayerNormalization", "Softmax", "Erf"} <= ops  # present, and in float (checked above)
    if flavour == "trt":
        assert checks.trt_qdq_problems(model) == []
        weighted = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
        for n in weighted:  # TensorRT: weighted-op outputs are not quantized
            assert all(c.op_type != "QuantizeLinear" for c in consumers.get(n.output[0], [])), n.name


@pytest.mark.parametrize("flavour", ["trt", "cpu"])
def test_vit_int8_agrees_with_fp32_on_held_out_images(vit, flavour):
    paths, x = vit
    ref = run_logits(onnx.load(paths["fp32"]), x)
    assert len(np.unique(ref.argmax(1))) >= 6  # a trained model, not a constant one
    agree, err = compare(run_logits(onnx.load(paths[flavour]), x), ref)
    assert agree >= 97.0 and err < 0.05, (agree, err)
