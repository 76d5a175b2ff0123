"""Layer sensitivity and mixed precision under a budget (calib/layers.py, sensitivity.py, mixed.py, tuning.py).

A test_resnet trained for two quick epochs on fashion-mini at 32 px, made fragile by scaling one
output channel of its first conv by 200 and the matching input channel of the next conv by 1/200
(the same function under ReLU, but that activation's per-tensor INT8 scale then crushes every other
channel): the next conv must come out as the most sensitive layer and keeping it in FP32 must meet
the budget.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import timm
import torch
from onnx import TensorProto, helper, numpy_helper

from lfcc_pipeline.calib import graph
from lfcc_pipeline.calib.layers import float_constants, keep_float, kept_layers, module_path, quantizable_layers
from lfcc_pipeline.calib.mixed import Mixed, search, top1
from lfcc_pipeline.calib.qdq import QuantSpec, quantize_int8
from lfcc_pipeline.calib.sensitivity import analyse, compare, run_logits
from lfcc_pipeline.calib.sensitivity_plot import plot_sensitivity
from lfcc_pipeline.calib.tuning import Tuned, TuneSpec, mixed_line, tune
from lfcc_pipeline.core.config import BenchConfig, CalibConfig, DataConfig, ModelsConfig, RunConfig
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.core.onnx_meta import PREPROCESS_KEY
from lfcc_pipeline.core.preprocess import Preprocess
from lfcc_pipeline.core.stage import StageContext
from lfcc_pipeline.data.sources import load_dataset
from lfcc_pipeline.data.specs import parse_data_spec
from lfcc_pipeline.data.transforms import Normalization, to_float
from lfcc_pipeline.models.onnx_export import export_onnx
from lfcc_pipeline.stages import calibrate

FRAGILE_A, FRAGILE_B = "/conv1/conv1.0/Conv", "/conv1/conv1.3/Conv"


@pytest.fixture(scope="module")
def data():
    ds = load_dataset(parse_data_spec("fashion-mini"))
    norm = Normalization((0.5,) * 3, (0.5,) * 3)
    train = norm(to_float(ds.train.images[:2048], 32)), ds.train.labels[:2048]
    calib = norm(to_float(ds.train.images[2048:2304], 32)).numpy()
    val = norm(to_float(ds.test.images[:512], 32)).numpy(), ds.test.labels[:512].numpy()
    return train, calib, val


@pytest.fixture(scope="module")
def models(data, tmp_path_factory):
    """{"fp32", "fragile", "fragile.trt", "fragile.cpu", "fp32.cpu"}: paths."""
    out = tmp_path_factory.mktemp("sensitivity")
    (x, y), calib, _ = data
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=10)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(2):
        for i in range(0, len(x), 64):
            loss = torch.nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    paths = {"fp32": out / "fp32.onnx", "fragile": out / "fragile.onnx"}
    export_onnx(model, paths["fp32"], 32, metadata={"lfcc.model": "test_resnet"})
    onnx.save(_fragile(onnx.load(paths["fp32"])), paths["fragile"])
    spec = QuantSpec(method="max")
    for src, flavour in (("fragile", "trt"), ("fragile", "cpu"), ("fp32", "cpu")):
        paths[f"{src}.{flavour}"] = out / f"{src}.{flavour}.onnx"
        quantize_int8(paths[src], paths[f"{src}.{flavour}"], calib, spec, flavour, src)
    return paths


def _fragile(model, scale: float = 200.0, channel: int = 0):
    model = graph.fold_identity_initializers(model)
    inits = {i.name: i for i in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    a, b = nodes[FRAGILE_A], nodes[FRAGILE_B]
    wa, ba, wb = (numpy_helper.to_array(inits[t]).copy() for t in (a.input[1], a.input[2], b.input[1]))
    wa[channel] *= scale
    ba[channel] *= scale
    wb[:, channel] /= scale
    for name, value in ((a.input[1], wa), (a.input[2], ba), (b.input[1], wb)):
        inits[name].CopyFrom(numpy_helper.from_array(value, name))
    return model


def test_module_paths_name_real_pytorch_modules(models):
    assert module_path("/layer2/layer2.0/downsample/downsample.1/Conv") == "layer2.0.downsample.1"
    assert module_path("/blocks/blocks.0/attn/qkv/MatMul") == "blocks.0.attn.qkv"
    assert module_path("/fc/Gemm") == "fc" and module_path("Conv_3") == ""
    names = dict(timm.create_model("test_resnet", num_classes=10).named_modules())
    layers = quantizable_layers(onnx.load(models["fp32.cpu"]))
    assert len(layers) == 16 and all(layer.module in names for layer in layers), layers
    assert {type(names[layer.module]).__name__ for layer in layers} == {"Conv2d", "Linear"}


def test_keeping_every_layer_in_float_gives_back_the_fp32_model(models, data):
    x = data[2][0][:64]
    fp32 = onnx.load(models["fragile"])
    q = onnx.load(models["fragile.trt"])  # Q/DQ only in front of the weighted ops
    layers = quantizable_layers(q)
    back = keep_float(q, [layer.node for layer in layers], float_constants(fp32), layers)
    ref = run_logits(fp32, x)
    assert np.abs(run_logits(back, x) - ref).max() < 0.05 * np.abs(run_logits(q, x) - ref).max()
    assert [k["node"] for k in kept_layers(back)] == [layer.node for layer in layers]
    assert kept_layers(q) == []


@pytest.mark.parametrize("flavour", ["trt", "cpu"])
def test_fragile_layer_is_the_most_sensitive_and_the_budget_fixes_it(flavour, models, data):
    x, y = data[2]
    fp32 = onnx.load(models["fragile"])
    q = onnx.load(models[f"fragile.{flavour}"])
    ref = run_logits(fp32, x)
    report = analyse(q, float_constants(fp32), x[:256], ref[:256], max_layers=6)
    top = report["layers"][0]
    assert top["node"] == FRAGILE_B and top["module"] == "conv1.3", report["layers"][:3]
    assert top["agreement_gain"] > 30 and top["output_error"] < 0.2 * report["all_int8"]["output_error"]
    assert report["analysed"] == 6 and report["quantizable_layers"] == 16
    gains = [r["agreement_gain"] for r in report["layers"]]
    assert gains == sorted(gains, reverse=True)
    ref_top1 = top1(ref, y)
    m = search(q, float_constants(fp32), [r["node"] for r in report["layers"]], x, y, ref_top1, 0.5, 4)
    assert m.all_int8_drop > 10 and m.met and m.drop <= 0.5
    assert [k["module"] for k in m.kept] == ["conv1.3"] and m.steps == [{"layers": 1, "drop": m.drop}]
    assert top1(run_logits(m.model, x), y) == pytest.approx(ref_top1 - m.drop)
    assert kept_layers(m.model) == m.kept


def test_tune_is_deterministic_and_leaves_a_model_within_budget_alone(models, data, tmp_path):
    x, y = data[2]
    qdq = {"int8.trt": models["fragile.trt"], "int8.cpu": models["fragile.cpu"]}
    spec = TuneSpec(budget=0.5, sensitivity_images=128, sensitivity_layers=4, mixed_max_layers=3)
    a, b = (tune(qdq, models["fragile"], x, y, spec) for _ in range(2))
    assert a.sensitivity == b.sensitivity and {f: m.describe() for f, m in a.mixed.items()} == {
        f: m.describe() for f, m in b.mixed.items()
    }
    assert set(a.mixed) == {"int8.trt", "int8.cpu"} and all(m.met for m in a.mixed.values())
    assert "1 layer(s) kept in higher precision (conv1.3)" in mixed_line(
        "student", "int8.cpu", a.mixed["int8.cpu"], 0.5, 3
    )
    healthy = tune({"int8.cpu": models["fp32.cpu"]}, models["fp32"], x, y, TuneSpec(budget=5.0))
    assert healthy.sensitivity == {} and healthy.mixed == {}  # within budget and not asked: nothing measured
    asked = tune({"int8.cpu": models["fp32.cpu"]}, models["fp32"], x, y, TuneSpec(budget=5.0, sensitivity=True,
                 sensitivity_images=64, sensitivity_layers=3))  # fmt: skip
    assert asked.mixed == {} and len(asked.sensitivity["int8.cpu"]["layers"]) == 3
    report = {"model": "student", "flavours": a.sensitivity}
    plot_sensitivity(report, tmp_path / "sensitivity.png")
    png = (tmp_path / "sensitivity.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_a_budget_that_cannot_be_met_keeps_the_best_model_and_says_so(models, data):
    x, y = data[2]
    fp32 = onnx.load(models["fragile"])
    q = onnx.load(models["fragile.cpu"])
    order = [FRAGILE_B, "/fc/Gemm"]
    m = search(q, float_constants(fp32), order, x, y, top1(run_logits(fp32, x), y), -50.0, 2)
    assert not m.met and len(m.steps) == 2 and m.kept and m.drop == min(s["drop"] for s in m.steps)
    line = mixed_line("student", "int8.cpu", m, -50.0, 2)
    assert "stays above --max-int8-drop -50" in line and "kept the best model found" in line and "\n" not in line


def _relu_qdq_model():
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 4])
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "s", "zp"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["dq"], name="dq"),
        helper.make_node("Relu", ["dq"], ["logits"], name="relu"),
    ]
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.int8), "zp"),
    ]
    return helper.make_model(
        helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)], ir_version=9
    )


def test_sensitivity_of_a_model_without_quantizable_layers_is_one_config_error(tmp_path):
    model = _relu_qdq_model()
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    assert quantizable_layers(model) == []
    with pytest.raises(ConfigError, match="has no quantizable layer") as e:
        analyse(model, {}, x, run_logits(model, x), label="student int8.cpu")
    assert "\n" not in e.value.line()
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="no quantizable layer"):
        tune({"int8.cpu": Path(tmp_path / "m.onnx")}, tmp_path / "m.onnx", x, np.zeros(8, int),
             TuneSpec(budget=1.0, sensitivity=True))  # fmt: skip
    agree, err = compare(run_logits(model, x), run_logits(model, x))
    assert agree == 100.0 and err == 0.0


@dataclasses.dataclass(frozen=True)
class _Calib(CalibConfig):  # the sensitivity settings, until the config declares them
    sensitivity: bool = False
    sensitivity_images: int = 128
    sensitivity_layers: int = 4
    mixed_max_layers: int = 3


def _stage_cfg(tmp_path, **calib):
    return RunConfig(
        models=ModelsConfig(teacher="test_vit", student="test_resnet", img_size=32),
        data=DataConfig(spec="fashion-mini"),
        calib=_Calib(size=128, teacher=False, eval_images=400, method="max", **calib),
        bench=BenchConfig(targets=("ort-int8",)),
        out=tmp_path,
    )


def _student(run_dir, model):
    pre = Preprocess(img_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    graph.set_metadata(model, {PREPROCESS_KEY: pre.to_json(), "lfcc.model": "test_resnet"})
    (run_dir / "export").mkdir(parents=True)
    onnx.save(model, run_dir / "export" / "student.onnx")


def test_calibrate_stage_fixes_a_fragile_student_and_reports_it(models, tmp_path):
    _student(tmp_path, onnx.load(models["fragile"]))
    cfg = _stage_cfg(tmp_path, max_int8_drop=0.5)
    result = calibrate.run(cfg, StageContext(tmp_path, torch.device("cpu"), "test"))
    assert {"calib/sensitivity.json", "calib/sensitivity.png"} <= set(result.outputs)
    acc = json.loads((tmp_path / "calib" / "accuracy.json").read_text())
    assert acc["gate"]["ok"] and set(acc["mixed"]) == {"int8.trt", "int8.cpu"}
    for flavour in ("int8.trt", "int8.cpu"):
        mixed = acc["mixed"][flavour]
        assert mixed["met"] and mixed["all_int8_drop"] > 10 and [k["module"] for k in mixed["kept"]] == ["conv1.3"]
        assert acc["student"][flavour]["top1_drop"] <= 0.5
        assert acc["models"][f"calib/student.{flavour}.onnx"]["kept_layers"] == mixed["kept"]
    sens = json.loads((tmp_path / "calib" / "sensitivity.json").read_text())
    assert (
        sens["flavours"]["int8.cpu"]["layers"][0]["node"] == FRAGILE_B and sens["flavours"]["int8.cpu"]["images"] == 128
    )
    model = onnx.load(tmp_path / "calib" / "student.int8.trt.onnx")
    assert [k["node"] for k in kept_layers(model)] == [FRAGILE_B]
    strongly_typed = onnx.load(tmp_path / "calib" / "student.int8.trt-fp16.onnx")  # made from the mixed model
    assert "calib/student.int8.trt-fp16.onnx" in result.outputs and kept_layers(strongly_typed) == kept_layers(model)


def test_strict_unmet_budget_and_unquantizable_student_are_one_config_error_each(tmp_path):
    unmet = Mixed(model=None, kept=[], drop=2.0, all_int8_drop=2.0, met=False)
    tuned = Tuned(mixed={"int8.cpu": unmet})
    line = mixed_line("student", "int8.cpu", unmet, 0.3, 3)
    calibrate._budget_lines(_stage_cfg(tmp_path, strict=False), tuned, [line])  # a warning only
    with pytest.raises(ConfigError, match="stays above --max-int8-drop 0.3") as e:
        calibrate._budget_lines(_stage_cfg(tmp_path, strict=True), tuned, [line])
    assert "\n" not in e.value.line()
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["p"]), helper.make_node("Flatten", ["p"], ["logits"])]
    pool = helper.make_model(helper.make_graph(nodes, "pool", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    _student(tmp_path, pool)
    with pytest.raises(ConfigError, match="student.onnx has no quantizable layer"):
        calibrate.run(_stage_cfg(tmp_path, sensitivity=True), StageContext(tmp_path, torch.device("cpu"), "test"))
    assert not (tmp_path / "calib").exists()  # nothing written
