"""From an ONNX file to an engine for each trt-* target, against the stand-in tensorrt module of
each version: which ONNX is parsed (as given, or an FP16 / Q/DQ model made on the fly from a
calib.npz), the profile, the engine JSON, the standalone `build` command and its errors."""

import json

import numpy as np
import pytest
import timm
import torch
from click.testing import CliRunner

from lfcc_pipeline.calib.calibset import CalibSet, save_calibset
from lfcc_pipeline.calib.fp16 import convert_fp16
from lfcc_pipeline.calib.graph import load
from lfcc_pipeline.calib.qdq import QuantSpec, quantize_int8
from lfcc_pipeline.cli import cli
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.data.sources import load_dataset
from lfcc_pipeline.data.specs import parse_data_spec
from lfcc_pipeline.models.onnx_export import export_onnx
from lfcc_pipeline.runtimes import trt_engine
from lfcc_pipeline.runtimes.trt_build import BuildRequest, build_target, default_engine_path, onnx_kind
from lfcc_pipeline.runtimes.trt_plan import plan_build
from tests.fake_tensorrt import fake_tensorrt

SPEC = QuantSpec(method="max", batch_size=32, tool="ort")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An FP32 test_resnet ONNX, its TensorRT Q/DQ, CPU INT8 and FP16 versions, and a calib.npz."""
    d = tmp_path_factory.mktemp("trt_build")
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=10)
    fp32 = d / "student.onnx"
    export_onnx(model, fp32, 32, metadata={"lfcc.model": "test_resnet", "lfcc.role": "student"})
    ds = load_dataset(parse_data_spec("fashion-mini"))
    cs = CalibSet(ds.train.images[:64].numpy(), ds.train.labels[:64].numpy().astype(np.int64), 32, "stretch", 1.0,
                  (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), tuple(ds.classes))  # fmt: skip
    save_calibset(d / "calib.npz", cs)
    from lfcc_pipeline.calib.calibset import model_inputs

    data = model_inputs(cs, None)
    quantize_int8(fp32, d / "student.int8.trt.onnx", data, SPEC, "trt", "student")
    quantize_int8(fp32, d / "student.int8.cpu.onnx", data, SPEC, "cpu", "student")
    convert_fp16(fp32, d / "student.fp16.onnx", data, SPEC, "student")
    return d


@pytest.fixture
def fake(monkeypatch):
    def install(version: str, **kwargs):
        trt, calls = fake_tensorrt(version, **kwargs)
        monkeypatch.setattr(trt_engine, "import_tensorrt", lambda: trt)
        monkeypatch.setattr(
            trt_engine, "gpu_identity", lambda index=0: {"gpu": "Fake GPU", "compute_capability": "8.7"}
        )
        return calls

    return install


def test_onnx_kind_tells_the_four_models_apart(files):
    kinds = {name: onnx_kind(load(files / name)) for name in
             ("student.onnx", "student.fp16.onnx", "student.int8.trt.onnx", "student.int8.cpu.onnx")}  # fmt: skip
    assert kinds == {"student.onnx": "fp32", "student.fp16.onnx": "fp16", "student.int8.trt.onnx": "qdq",
                     "student.int8.cpu.onnx": "int8-cpu"}  # fmt: skip


def test_default_engine_path_sits_beside_the_onnx(files):
    assert default_engine_path(files / "student.int8.trt.onnx", "trt-int8") == files / "student.trt-int8.engine"
    assert default_engine_path(files / "student.onnx", "trt-fp16") == files / "student.trt-fp16.engine"


# (TensorRT version, target, given file, with calib.npz) -> what the parser must see
CASES = [
    ("10.3.0", "trt-fp32", "student.onnx", False, "fp32"),
    ("10.3.0", "trt-fp16", "student.onnx", False, "fp32"),  # FP16 builder flag on the FP32 ONNX
    ("10.3.0", "trt-fp16", "student.fp16.onnx", False, "fp16"),
    ("10.3.0", "trt-int8", "student.int8.trt.onnx", False, "qdq"),
    ("10.3.0", "trt-int8", "student.onnx", True, "qdq"),  # quantized on the fly
    ("8.6.1", "trt-int8", "student.onnx", True, "qdq"),
    ("11.1.0", "trt-fp16", "student.fp16.onnx", False, "fp16"),
    ("11.1.0", "trt-fp16", "student.onnx", True, "fp16"),  # converted on the fly: no FP16 flag in 11
    ("11.1.0", "trt-int8", "student.int8.trt.onnx", False, "qdq"),
]


@pytest.mark.parametrize("version, target, given, with_calib, parsed", CASES)
def test_the_parser_gets_the_onnx_the_plan_needs(version, target, given, with_calib, parsed, files, fake, tmp_path):
    calls = fake(version)
    engine = tmp_path / f"student.{target}.engine"
    req = BuildRequest(files / given, target, engine, files / "calib.npz" if with_calib else None,
                       1, 4, 16, 256, tmp_path / "trt.cache", SPEC)  # fmt: skip
    meta = build_target(req)
    has_qdq = "QuantizeLinear" in calls["parsed_ops"]
    assert (has_qdq, calls["parsed_fp16"]) == {"fp32": (False, False), "fp16": (False, True), "qdq": (True, False)}[
        parsed
    ]
    plan = plan_build(version, target.split("-")[1])
    assert meta["builder_flags"] == list(plan.builder_flags)
    assert calls["profile"] == ("input", (1, 3, 32, 32), (4, 3, 32, 32), (16, 3, 32, 32))
    assert calls["pool"][1] == 256 << 20
    on_disk = json.loads(engine.with_name(engine.name + ".json").read_text())
    assert on_disk["source_onnx"] == str(files / given) and on_disk["target"] == target
    assert ("converted" in on_disk) == with_calib
    assert on_disk["metadata"]["lfcc.model"] == "test_resnet"
    if not with_calib:
        assert calls["parsed"] == str(files / given)  # used as given, nothing converted


@pytest.mark.parametrize(
    "version, target, given, words",
    [
        ("11.1.0", "trt-fp16", "student.onnx", "--calib"),
        ("10.3.0", "trt-int8", "student.onnx", "--calib"),
        ("10.3.0", "trt-int8", "student.int8.cpu.onnx", "not what TensorRT takes: "),
        ("10.3.0", "trt-fp32", "student.int8.trt.onnx", "needs the FP32 ONNX"),
        ("11.1.0", "trt-int8", "student.fp16.onnx", "Q/DQ ONNX"),
    ],
)
def test_a_wrong_onnx_for_the_target_is_one_clear_error(version, target, given, words, files, fake, tmp_path):
    fake(version)
    engine = tmp_path / "x.engine"
    with pytest.raises(ConfigError) as e:
        build_target(BuildRequest(files / given, target, engine))
    assert words in e.value.line()
    assert not engine.exists()


def test_standalone_build_command_writes_engine_and_json(files, fake, tmp_path):
    fake("10.3.0")
    out = tmp_path / "engines" / "student.trt-int8.engine"
    r = CliRunner().invoke(cli, ["build", "--onnx", str(files / "student.onnx"), "--target", "trt-int8",
                                 "--calib", str(files / "calib.npz"), "--calib-method", "max", "--max-batch", "8",
                                 "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "TensorRT 10.3.0 int8 engine for Fake GPU, batch 1..8" in r.output
    assert out.read_bytes() == b"PLAN:10.3.0"
    assert json.loads(out.with_name(out.name + ".json").read_text())["profile"]["max"] == [8, 3, 32, 32]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--target", "ort-int8"], "needs --target trt-fp32"),
        ([], "needs --target"),
        (["--target", "trt-fp16", "--target", "trt-int8", "--out", "x.engine"], "one engine file"),
        (["--target", "trt-fp16", "--max-batch", "0"], "--max-batch"),
        (["--target", "trt-fp16", "--workspace", "0"], "--workspace"),
        (["--target", "trt-fp16", "--timing-cache", "{dir}"], "is a directory"),
    ],
)
def test_standalone_build_bad_input(args, words, files, fake, tmp_path):
    fake("10.3.0")
    args = [a.format(dir=tmp_path) for a in args]
    r = CliRunner().invoke(cli, ["build", "--onnx", str(files / "student.onnx"), *args])
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and words in lines[0], r.output


def test_without_tensorrt_build_names_tensorrt_and_what_to_install(files):
    pytest.importorskip("torch")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    r = CliRunner().invoke(cli, ["build", "--onnx", str(files / "student.onnx"), "--target", "trt-fp16"])
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert "TensorRT is not installed" in lines[0] and "pip install tensorrt" in lines[0]
    assert not list(files.glob("*.engine"))


def test_a_run_with_tensorrt_targets_needs_batch_1_and_the_throughput_batch_in_the_profile():
    from lfcc_pipeline.core.config import BenchConfig, BuildConfig, RunConfig

    trt = BenchConfig(targets=("trt-fp16",), batch_size=32)
    with pytest.raises(ConfigError, match="latency at batch 1"):
        RunConfig(bench=trt, build=BuildConfig(min_batch=2)).validate()
    with pytest.raises(ConfigError, match="smaller than the throughput batch"):
        RunConfig(bench=trt, build=BuildConfig(max_batch=16)).validate()
    RunConfig(bench=BenchConfig(targets=("torch",)), build=BuildConfig(min_batch=2, opt_batch=2)).validate()


@pytest.mark.parametrize("version, fp16_outside", [("11.1.0", True), ("10.3.0", False)])
def test_strongly_typed_int8_parses_the_fp16_outside_qdq_model(version, fp16_outside, files, fake, tmp_path):
    """TensorRT 11 builds INT8 from calibrate's <model>.int8.trt-fp16.onnx where it lies beside the Q/DQ model
    (weakly typed TensorRT 10 keeps the given one), and makes that form on the fly from an FP32 ONNX."""
    import shutil

    from lfcc_pipeline.calib.calibset import load_calibset, model_inputs
    from lfcc_pipeline.calib.qdq_fp16 import qdq_fp16

    qdq = tmp_path / "student.int8.trt.onnx"
    shutil.copy(files / "student.int8.trt.onnx", qdq)
    data = model_inputs(load_calibset(files / "calib.npz"), None)
    twin = qdq_fp16(qdq, tmp_path / "student.int8.trt-fp16.onnx", data, "student").path
    calls = fake(version)
    meta = build_target(BuildRequest(qdq, "trt-int8", tmp_path / "student.trt-int8.engine"))
    assert calls["parsed"] == str(twin if fp16_outside else qdq) and "QuantizeLinear" in calls["parsed_ops"]
    assert calls["parsed_fp16"] is fp16_outside and meta["source_onnx"] == str(qdq)
    assert ("strongly_typed_onnx" in meta) is fp16_outside
    calls = fake(version)
    build_target(BuildRequest(files / "student.onnx", "trt-int8", tmp_path / "fly.engine", files / "calib.npz",
                              spec=SPEC))  # fmt: skip
    assert "QuantizeLinear" in calls["parsed_ops"] and calls["parsed_fp16"] is fp16_outside


@pytest.mark.parametrize("target, given, parsed_fp16", [("trt-int8", "student.int8.trt.onnx", True),
                                                         ("trt-fp16", "student.fp16.onnx", True),
                                                         ("trt-fp32", "student.onnx", False)])  # fmt: skip
def test_strongly_typed_trt_10_sets_the_network_flag_and_no_precision_flags(target, given, parsed_fp16, files, fake,
                                                                             tmp_path):  # fmt: skip
    import shutil

    from lfcc_pipeline.calib.calibset import load_calibset, model_inputs
    from lfcc_pipeline.calib.qdq_fp16 import qdq_fp16

    src = tmp_path / given
    shutil.copy(files / given, src)
    if target == "trt-int8":  # calibrate's FP16-outside twin lies beside the Q/DQ model
        qdq_fp16(src, tmp_path / "student.int8.trt-fp16.onnx", model_inputs(load_calibset(files / "calib.npz"), None),
                 "student")  # fmt: skip
    calls = fake("10.3.0")
    meta = build_target(BuildRequest(src, target, tmp_path / "x.engine", strongly_typed=True))
    assert calls["network_flags"] == 1 << 1 and calls["builder_flags"] == [] and meta["strongly_typed"] is True
    assert meta["network_flags"] == ["STRONGLY_TYPED"] and calls["parsed_fp16"] is parsed_fp16
    assert ("QuantizeLinear" in calls["parsed_ops"]) is (target == "trt-int8")
    fake("10.3.0")
    with pytest.raises(ConfigError, match="FP16 ONNX"):  # strongly typed FP16 needs an FP16 ONNX
        build_target(BuildRequest(files / "student.onnx", "trt-fp16", tmp_path / "y.engine", strongly_typed=True))


@pytest.mark.parametrize("version, target", [("10.3.0", "trt-fp16"), ("10.3.0", "trt-int8"), ("8.6.1", "trt-int8"),
                                             ("11.4.1", "trt-int8")])  # fmt: skip
def test_dla_builds_set_the_default_device_core_and_gpu_fallback(version, target, files, fake, tmp_path):
    calls = fake(version, dla_cores=2)
    given = files / ("student.int8.trt.onnx" if target == "trt-int8" else "student.onnx")
    engine = tmp_path / "student.engine"
    meta = build_target(BuildRequest(given, target, engine, min_batch=1, opt_batch=1, max_batch=1, dla_core=1))
    assert calls["DLA_core"] == 1 and calls["default_device_type"].name == "DLA"
    assert "GPU_FALLBACK" in calls["builder_flags"]
    assert json.loads(engine.with_name(engine.name + ".json").read_text())["dla_core"] == meta["dla_core"] == 1


def test_no_dla_by_default(files, fake, tmp_path):
    calls = fake("10.3.0", dla_cores=2)
    meta = build_target(BuildRequest(files / "student.onnx", "trt-fp16", tmp_path / "e.engine"))
    assert calls["DLA_core"] is None and "GPU_FALLBACK" not in calls["builder_flags"] and meta["dla_core"] is None


@pytest.mark.parametrize(
    "version, target, cores, batches, core, words",
    [
        ("10.3.0", "trt-fp16", 0, (1, 1, 1), 0, "this machine has no DLA"),
        ("10.3.0", "trt-fp16", 2, (1, 1, 1), 2, "has 2 DLA core(s)"),
        ("10.3.0", "trt-fp16", 2, (1, 1, 8), 0, "needs a static input shape"),
        ("10.3.0", "trt-fp32", 2, (1, 1, 1), 0, "DLA runs FP16 and INT8 layers only"),
        ("10.13.2", "trt-fp16", 2, (1, 1, 1), 0, "cannot build for DLA"),
        ("11.1.0", "trt-int8", 2, (1, 1, 1), 0, "cannot build for DLA"),
        ("10.3.0", "trt-fp16", 2, (1, 1, 1), -1, "is negative"),
    ],
)
def test_dla_bad_input_is_one_line_and_writes_nothing(version, target, cores, batches, core, words, files, fake,
                                                      tmp_path):  # fmt: skip
    from lfcc_pipeline.core.errors import LfccError

    fake(version, dla_cores=cores)
    given = files / ("student.int8.trt.onnx" if target == "trt-int8" else "student.onnx")
    engine = tmp_path / "e.engine"
    lo, opt, hi = batches
    with pytest.raises(LfccError) as e:
        build_target(BuildRequest(given, target, engine, min_batch=lo, opt_batch=opt, max_batch=hi, dla_core=core))
    assert words in e.value.line() and "\n" not in e.value.line()
    assert not engine.exists()


def test_dla_versions_follow_nvidia_support_matrix():
    from lfcc_pipeline.runtimes.trt_plan import dla_supported

    assert [dla_supported(v) for v in ("8.6.1", "10.3.0", "10.7.0", "10.8.0", "11.3.0", "11.4.0", "11.4.1", "11.5")] == [
        True, True, True, False, False, False, True, True]  # fmt: skip
