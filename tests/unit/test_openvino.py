"""OpenVINO runtime: IR conversion with our metadata, the runner's settings and numbers against ONNX Runtime.

Needs the openvino extra (`make test-openvino`); skipped without it."""

from pathlib import Path

import numpy as np
import pytest

ov = pytest.importorskip("openvino", reason='needs the openvino extra: pip install "lfcc-pipeline[openvino]"')
pytestmark = pytest.mark.openvino

from lfcc_pipeline.calib.qdq import QuantSpec, quantize_int8  # noqa: E402
from lfcc_pipeline.core.errors import ArtifactError, TargetUnavailable  # noqa: E402
from lfcc_pipeline.core.onnx_meta import PREPROCESS_KEY  # noqa: E402
from lfcc_pipeline.core.preprocess import Preprocess  # noqa: E402
from lfcc_pipeline.runtimes.ort_runner import OrtRunner  # noqa: E402
from lfcc_pipeline.runtimes.ov_install import cpu_capabilities  # noqa: E402
from lfcc_pipeline.runtimes.ov_ir import bin_path, convert_onnx, ir_metadata, ir_precision, read_model  # noqa: E402
from lfcc_pipeline.runtimes.ov_runner import OvRunner  # noqa: E402

PRE = Preprocess(img_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), resize="stretch", crop_pct=1.0)
META = {"lfcc.role": "student", "lfcc.model": "test_resnet", "lfcc.labels": '["a", "b"]', PREPROCESS_KEY: PRE.to_json()}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import torch

    from lfcc_pipeline.models.factory import create_model
    from lfcc_pipeline.models.onnx_export import export_onnx

    d = tmp_path_factory.mktemp("ov")
    torch.manual_seed(0)
    model, _ = create_model("test_resnet", 10, 32)
    fp32 = d / "student.onnx"
    export_onnx(model, fp32, 32, metadata=META)
    x = np.random.default_rng(0).standard_normal((40, 3, 32, 32)).astype(np.float32)
    int8 = quantize_int8(fp32, d / "student.int8.cpu.onnx", x[:32], QuantSpec(method="max", batch_size=8), "cpu", "t")
    xml = d / "student.ov.xml"
    xml8 = d / "student.int8.ov.xml"
    assert convert_onnx(fp32, xml) == [xml, bin_path(xml)]
    convert_onnx(int8.path, xml8)
    return {"onnx": fp32, "int8_onnx": int8.path, "xml": xml, "xml8": xml8, "x": x}


def test_ir_keeps_metadata_and_fp32_weights(models):
    m = read_model(models["xml"])
    assert ir_metadata(m) == META
    assert ir_precision(m) == "fp32" and ir_precision(read_model(models["xml8"])) == "int8"
    # FP32 weights (save_model would halve them by default): the .bin is about the size of the ONNX
    assert bin_path(models["xml"]).stat().st_size > 0.8 * models["onnx"].stat().st_size


def test_fp32_is_fp32_and_matches_onnx_runtime(models):
    r = OvRunner(models["xml"], "fp32", threads=2)
    x = models["x"]
    ref = OrtRunner(models["onnx"])(x)
    got = r(x)
    assert str(r._compiled[len(x)][0].get_property("INFERENCE_PRECISION_HINT")) in ("f32", "<Type: 'float32'>")
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())  # BF16 would miss this by far


def test_settings_threads_and_hints(models):
    r = OvRunner(models["xml"], "fp32", threads=2)
    r(models["x"][:1])
    compiled = r._compiled[1][0]
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 2
    assert str(compiled.get_property("PERFORMANCE_HINT")) == "LATENCY"
    t = r.for_throughput()
    t(models["x"][:8])
    assert str(t._compiled[1][0].get_property("PERFORMANCE_HINT")) == "THROUGHPUT"


@pytest.mark.parametrize("n", [1, 3, 7, 40])
def test_throughput_split_gives_the_same_logits(models, n):
    x = models["x"][:n]
    lat = OvRunner(models["xml"], "fp32", threads=2)(x)
    thr = OvRunner(models["xml"], "fp32", threads=2, mode="throughput")
    assert np.allclose(thr(x), lat, atol=1e-5)
    assert len(thr.prepare(x)) == min(n, len(thr._requests(1)))


def test_int8_ir_follows_the_qdq_model(models):
    x = models["x"]
    ref = OrtRunner(models["int8_onnx"], "int8")(x)
    got = OvRunner(models["xml8"], "int8", threads=2)(x)
    fp32 = OrtRunner(models["onnx"])(x)
    # the same quantized model: OpenVINO's INT8 logits stay as close to ONNX Runtime's as the FP32 ones are to both
    assert np.abs(got - ref).mean() < 0.5 * np.abs(fp32 - ref).mean() + 1e-3
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9


def test_missing_bin_is_one_line(models, tmp_path):
    lone = tmp_path / "lone.xml"
    lone.write_bytes(models["xml"].read_bytes())
    with pytest.raises(ArtifactError, match="has no weights file lone.bin"):
        read_model(lone)
    (tmp_path / "bad.xml").write_text("<net>")
    (tmp_path / "bad.bin").write_bytes(b"")
    with pytest.raises(ArtifactError, match="OpenVINO cannot read"):
        read_model(tmp_path / "bad.xml")


def test_fp16_only_with_native_fp16(models):
    if "FP16" in cpu_capabilities():
        r = OvRunner(models["xml"], "fp16", threads=2)
        assert r(models["x"][:2]).shape == (2, 10)
    else:
        with pytest.raises(TargetUnavailable, match="native FP16"):
            OvRunner(models["xml"], "fp16", threads=2)


def test_bench_files_reads_ir(models, tmp_path):
    from lfcc_pipeline.benchmark.standalone import describe_model

    m = describe_model(Path(models["xml8"]))
    assert (m.kind, m.role, m.name, m.precision, m.labels) == ("ov", "student", "test_resnet", "int8", ["a", "b"])
    assert m.preprocess == PRE
