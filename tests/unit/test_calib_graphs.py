"""The produced graphs: what TensorRT needs from Q/DQ and FP16 models, checked on the files.

Random-initialised timm tiny models (a CNN and a ViT) at 32 px, calibrated on real fashion-mini
images. Accuracy on trained models is checked end to end (tests/e2e/test_calibrate.py).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest
import timm
import torch
from onnx import TensorProto, helper, numpy_helper

from lfcc_pipeline.calib import checks, graph
from lfcc_pipeline.calib.fp16 import FP32_OPS, convert_fp16
from lfcc_pipeline.calib.qdq import ArrayReader, QuantSpec, quantize_int8
from lfcc_pipeline.data.sources import load_dataset
from lfcc_pipeline.data.specs import parse_data_spec
from lfcc_pipeline.data.transforms import Normalization, to_float
from lfcc_pipeline.models.onnx_export import export_onnx

HAVE_MODELOPT = importlib.util.find_spec("modelopt") is not None
TOOLS = ["ort", pytest.param("modelopt", marks=pytest.mark.skipif(not HAVE_MODELOPT, reason="nvidia-modelopt absent"))]
ARCHS = ["test_resnet", "test_vit"]


@pytest.fixture(scope="module")
def images():
    ds = load_dataset(parse_data_spec("fashion-mini"))
    norm = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return norm(to_float(ds.train.images[:96], 32)).numpy(), norm(to_float(ds.test.images[:256], 32)).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("calib_graphs")
    paths = {}
    for name in ARCHS:
        torch.manual_seed(0)
        kwargs = {"img_size": 32} if name == "test_vit" else {}
        model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs)
        export_onnx(model, out / f"{name}.onnx", 32, metadata={"lfcc.model": name})
        paths[name] = out / f"{name}.onnx"
    return paths


@pytest.fixture(scope="module")
def produced(exported, images, tmp_path_factory):
    """(arch, tool, flavour) -> path, made lazily and cached for the module."""
    out = tmp_path_factory.mktemp("calib_produced")
    cache = {}

    def make(arch: str, tool: str, flavour: str):
        key = (arch, tool, flavour)
        if key not in cache:
            spec = QuantSpec(method="max", batch_size=32, tool=tool)
            dst = out / f"{arch}.{tool}.{flavour}.onnx"
            if flavour == "fp16":
                cache[key] = convert_fp16(exported[arch], dst, images[0], spec, arch).path
            else:
                cache[key] = quantize_int8(exported[arch], dst, images[0], spec, flavour, arch).path
        return cache[key]

    return make


def _logits(path, x):
    return graph.session(path).run(None, {"input": x})[0]


def _cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("arch", ARCHS)
def test_trt_flavour_is_symmetric_per_channel_qdq(arch, tool, produced):
    model = onnx.load(produced(arch, tool, "trt"))
    assert graph.opset(model) >= 13
    consts = checks.constants(model)
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) >= 4
    for node in qdq:
        if len(node.input) > 2 and node.input[2]:
            zp = consts[node.input[2]]
            assert zp.dtype == np.int8 and not zp.any(), node.name  # symmetric: every zero-point 0, INT8
        if node.op_type == "DequantizeLinear" and node.input[0] in consts:
            assert consts[node.input[0]].dtype != np.int32, node.name  # no quantized bias
    weights, total = checks.weight_quantization(model)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert {w.node for w in weights} >= {n.name for n in convs}  # every Conv weight is quantized
    assert len(weights) >= 0.8 * total  # and most Gemm/MatMul ones (ModelOpt keeps a small classifier in float)
    for w in weights:
        assert w.axis == w.expected_axis and w.scales == w.channels > 1, w  # per output channel
    assert checks.trt_qdq_problems(model) == []
    meta = graph.metadata(model)
    assert meta["lfcc.precision"] == "int8" and meta["lfcc.model"] == arch  # the export's metadata is carried


def test_trt_check_catches_what_tensorrt_rejects(produced):
    model = onnx.load(produced("test_resnet", "ort", "trt"))
    consts = checks.constants(model)
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in consts)
    for init in model.graph.initializer:
        if init.name == q.input[2]:
            init.CopyFrom(numpy_helper.from_array(np.array(3, np.int8), init.name))
    weights, _ = checks.weight_quantization(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    conv = next(n for n in model.graph.node if n.name == weights[0].node)
    dq = producer[conv.input[1]]
    for init in model.graph.initializer:
        if init.name == dq.input[1]:
            init.CopyFrom(numpy_helper.from_array(np.array(0.01, np.float32), init.name))
        if len(dq.input) > 2 and init.name == dq.input[2]:
            init.CopyFrom(numpy_helper.from_array(np.array(0, np.int8), init.name))
    problems = " | ".join(checks.trt_qdq_problems(model))
    assert "non-zero zero-point" in problems and "per-tensor weight scale" in problems


@pytest.mark.parametrize("arch", ARCHS)
def test_cpu_flavour_is_u8s8(arch, produced):
    model = onnx.load(produced(arch, "ort", "cpu"))
    consts = checks.constants(model)
    zps = [consts[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zps and all(z.dtype == np.uint8 for z in zps)  # uint8 activations
    weights, total = checks.weight_quantization(model)
    assert weights and len(weights) == total and all(w.axis == w.expected_axis for w in weights)
    if arch == "test_vit":  # transformer blocks: LayerNorm/Softmax stay unquantized
        producer = {o: n for n in model.graph.node for o in n.output}
        for node in model.graph.node:
            if node.op_type in ("LayerNormalization", "Softmax"):
                assert producer.get(node.input[0]) is None or producer[node.input[0]].op_type != "DequantizeLinear"


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("arch", ARCHS)
def test_fp16_keeps_sensitive_ops_in_fp32(arch, tool, produced):
    model = onnx.load(produced(arch, tool, "fp16"))
    types = checks.tensor_types(model)
    sensitive = [n for n in model.graph.node if n.op_type in FP32_OPS]
    assert sensitive  # the CNN has GlobalAveragePool; the ViT LayerNormalization and Softmax
    if arch == "test_vit":
        assert {"LayerNormalization", "Softmax"} <= {n.op_type for n in sensitive}
    for node in sensitive:
        assert types[node.input[0]] == TensorProto.FLOAT and types[node.output[0]] == TensorProto.FLOAT, node.name
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    assert sum(types.get(n.output[0]) == TensorProto.FLOAT16 for n in convs) >= len(convs) // 2  # the bulk is FP16
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert checks.fp16_problems(model, FP32_OPS) == []


def test_fp16_check_catches_a_layernorm_in_fp16():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16),
        helper.make_node("LayerNormalization", ["x16", "g", "b"], ["n16"], name="ln"),
        helper.make_node("Cast", ["n16"], ["y"], to=TensorProto.FLOAT),
    ]
    inits = [
        numpy_helper.from_array(np.ones(4, np.float16), "g"),
        numpy_helper.from_array(np.zeros(4, np.float16), "b"),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    assert checks.fp16_problems(model, FP32_OPS) == [
        "LayerNormalization ln runs in float16 (x16)",
        "LayerNormalization ln runs in float16 (n16)",
    ]


@pytest.mark.parametrize("flavour", ["trt", "cpu", "fp16"])
@pytest.mark.parametrize("arch", ARCHS)
def test_each_model_runs_in_onnxruntime_close_to_fp32(arch, flavour, produced, exported, images):
    ref = _logits(exported[arch], images[1])
    got = _logits(produced(arch, "ort", flavour), images[1])
    assert got.shape == ref.shape and got.dtype == np.float32 and np.isfinite(got).all()
    assert _cosine(got, ref) > (0.999 if flavour == "fp16" else 0.95)


def test_reader_hands_out_every_batch_once_in_strided_windows():
    data = np.arange(10, dtype=np.float32).reshape(10, 1)
    reader = ArrayReader("input", data, batch_size=4, desc="t")
    assert len(reader) == 3 and reader.get_first()["input"].ravel().tolist() == [0, 1, 2, 3]
    seen = []
    for start in range(len(reader)):
        reader.set_range(start, start + 1)
        while (batch := reader.get_next()) is not None:
            seen.extend(batch["input"].ravel().tolist())
    assert seen == list(range(10))
    reader.rewind()
    assert sum(len(b["input"]) for b in reader) == 10
    reader.close()
