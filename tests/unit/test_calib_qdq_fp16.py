"""The FP16-outside-Q/DQ model for strongly typed TensorRT (calib/qdq_fp16.py), checked on the graph and
with the onnx reference evaluator against the FP32-outside preview model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import timm
import torch

from lfcc_pipeline.calib import checks, graph
from lfcc_pipeline.calib.qdq import QuantSpec, quantize_int8
from lfcc_pipeline.calib.qdq_fp16 import fp16_outside_problems, qdq_fp16, reference_logits
from lfcc_pipeline.calib.sensitivity import compare, run_logits
from lfcc_pipeline.data.sources import load_dataset
from lfcc_pipeline.data.specs import parse_data_spec
from lfcc_pipeline.data.transforms import Normalization, to_float
from lfcc_pipeline.models.onnx_export import export_onnx


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("qdq_fp16")
    ds = load_dataset(parse_data_spec("fashion-mini"))
    norm = Normalization((0.5,) * 3, (0.5,) * 3)
    calib, test = norm(to_float(ds.train.images[:64], 32)).numpy(), norm(to_float(ds.test.images[:8], 32)).numpy()
    paths = {}
    for arch in ("test_resnet", "test_vit"):
        torch.manual_seed(0)
        model = timm.create_model(arch, num_classes=10, **({"img_size": 32} if arch == "test_vit" else {}))
        export_onnx(model, out / f"{arch}.onnx", 32, metadata={"lfcc.model": arch})
        quantize_int8(out / f"{arch}.onnx", out / f"{arch}.trt.onnx", calib, QuantSpec(method="max"), "trt", arch)
        produced = qdq_fp16(out / f"{arch}.trt.onnx", out / f"{arch}.trt-fp16.onnx", calib, arch)
        paths[arch] = (out / f"{arch}.trt.onnx", produced.path)
    return paths, test


@pytest.mark.parametrize("arch", ["test_resnet", "test_vit"])
def test_fp16_outside_qdq_graph(arch, made):
    paths, _ = made
    preview, model = onnx.load(paths[arch][0]), onnx.load(paths[arch][1])
    assert fp16_outside_problems(model) == []
    assert graph.opset(model) >= 19 and graph.metadata(model)["lfcc.model"] == arch
    weights, total = checks.weight_quantization(model)
    assert weights and all(w.axis == w.expected_axis and w.scales == w.channels for w in weights)  # per-channel
    assert len(weights) == len(checks.weight_quantization(preview)[0])  # the same layers in INT8
    types = checks.tensor_types(model)
    weighted = [n for n in model.graph.node if n.op_type in checks.WEIGHTED_OPS]
    assert all(types[n.output[0]] == onnx.TensorProto.FLOAT16 for n in weighted)  # the bulk runs in FP16


def test_the_check_catches_an_fp32_island(made):
    paths, _ = made
    model = onnx.load(paths["test_resnet"][0])  # the FP32-outside preview model
    problems = " | ".join(fp16_outside_problems(model))
    assert "scale is not float16" in problems and "is float32 outside the FP32 ops" in problems


@pytest.mark.parametrize("arch", ["test_resnet", "test_vit"])
def test_reference_evaluator_agrees_with_the_preview_model(arch, made):
    paths, x = made
    ref = run_logits(onnx.load(paths[arch][0]), x)
    got = reference_logits(paths[arch][1], x)
    agree, err = compare(got, ref)
    assert got.dtype == np.float32 and np.isfinite(got).all() and err < 0.1, (agree, err)


def test_raising_the_opset_moves_reduction_axes_to_inputs():
    """ConvNeXt's LayerNorm2d exports as ReduceMean(axes=[1]) at opset 17; opset 19 wants axes as an input."""
    import onnx
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    from lfcc_pipeline.calib.qdq_fp16 import _raise_opset

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1, 4])
    node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=1)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    data = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    before = ReferenceEvaluator(model).run(None, {"x": data})[0]
    _raise_opset(model, 19)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 19 and "axes" not in {a.name for a in model.graph.node[0].attribute}
    np.testing.assert_allclose(ReferenceEvaluator(model).run(None, {"x": data})[0], before)
