"""The bundle an app ships, `predict` without torch, and `bench --model` on deployable files."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images(finished_run, tmp_path_factory):
    from lfcc_pipeline.data.sources import load_dataset
    from lfcc_pipeline.data.specs import DataSpec

    ds = load_dataset(DataSpec("fashion-mini", None), 0.1, 0)
    d = tmp_path_factory.mktemp("images")
    paths = []
    for i in range(20):
        p = d / f"img{i}.png"
        Image.fromarray(ds.test.images[i, 0].numpy()).save(p)
        paths.append(p)
    return paths, ds.test.labels[:20].numpy()


def test_bundle_contents(finished_run):
    b = finished_run / "bundle"
    assert sorted(p.name for p in b.iterdir()) == ["README.md", "labels.json", "preprocess.json", "student.onnx"]
    pre = json.loads((b / "preprocess.json").read_text())
    assert pre["img_size"] == 32 and len(pre["mean"]) == 3 and pre["channel_order"] == "RGB"
    assert json.loads((b / "labels.json").read_text())[9] == "Ankle boot"
    assert "onnxruntime" in (b / "README.md").read_text()


def test_predict_works_without_torch(finished_run, images):
    paths, _ = images
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
        "from lfcc_pipeline.cli import main\n"
        f"sys.argv = ['lfcc-pipeline', 'predict', '--bundle', {str(finished_run / 'bundle')!r}, '--top-k', '2', "
        f"{', '.join(repr(str(p)) for p in paths[:3])}]\n"
        "main()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    labels = json.loads((finished_run / "bundle" / "labels.json").read_text())
    assert len(lines) == 3 and all(line.startswith(str(p)) for line, p in zip(lines, paths, strict=False))
    assert all(any(label in line for label in labels) and line.count("%") == 2 for line in lines)


def test_bundle_predictions_match_the_pipeline(finished_run, images):
    """The app path (Pillow resize + preprocess.json) agrees with the training-time path (torch)."""
    import torch

    from lfcc_pipeline.data.transforms import to_float
    from lfcc_pipeline.models.factory import normalization
    from lfcc_pipeline.models.weights import load_model
    from lfcc_pipeline.predict import BundleModel

    paths, _ = images
    bundle = BundleModel(finished_run / "bundle")
    app = [bundle.labels.index(p.top[0][0]) for p in bundle.predict(paths, k=1)]
    model, _ = load_model(finished_run / "student" / "model.safetensors")
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(p)))[None] for p in paths])
    with torch.no_grad():
        ref = model.eval()(normalization(model)(to_float(x, 32))).argmax(1).tolist()
    assert np.mean(np.array(app) == np.array(ref)) >= 0.9


def test_predict_bad_input(finished_run, tmp_path):
    r = cli("predict", "--bundle", str(tmp_path), "x.png")
    assert r.returncode == 2 and "not a readable bundle" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "notes.txt").write_text("hello")
    r = cli("predict", "--bundle", str(finished_run / "bundle"), str(tmp_path / "notes.txt"))
    assert r.returncode == 2 and "cannot read image" in r.stderr and "Traceback" not in r.stderr


def test_bench_standalone_on_onnx_files(finished_run, tmp_path):
    out = tmp_path / "report"
    r = cli("bench", "--model", str(finished_run / "export" / "student.onnx"), "--model",
            str(finished_run / "export" / "teacher.onnx"), "--data", "fashion-mini", "--out", str(out),
            "--bench-iters", "5", "--bench-max-images", "256")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads((out / "report.json").read_text())["rows"]
    by_model = {row["model"]: row for row in rows}
    assert set(by_model) == {"teacher", "student"}
    assert by_model["teacher"]["agreement"] == 100.0 and by_model["student"]["target"] == "ort-fp32"
    assert by_model["student"]["speedup_vs_teacher"] is not None
    pipeline_rows = json.loads((finished_run / "bench" / "report.json").read_text())["rows"]
    ref = next(x for x in pipeline_rows if x["model"] == "student" and x["target"] == "ort-fp32")
    assert abs(ref["top1"] - by_model["student"]["top1"]) < 1e-6  # same images, same preprocessing, same model
    r = cli("bench", "--model", str(tmp_path / "missing.engine"), "--data", "fashion-mini")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_bench_standalone_gives_the_drop_against_the_fp32_file(finished_run, tmp_path):
    from lfcc_pipeline.calib.fp16 import convert_fp16
    from lfcc_pipeline.calib.qdq import QuantSpec

    fp32, fp16 = finished_run / "export" / "student.onnx", tmp_path / "student.fp16.onnx"
    data = np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    convert_fp16(fp32, fp16, data, QuantSpec(tool="ort"), "student")
    out = tmp_path / "report"
    r = cli("bench", "--model", str(fp32), "--model", str(fp16), "--data", "fashion-mini", "--out", str(out),
            "--bench-iters", "5", "--bench-max-images", "256")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = {row["precision"]: row for row in json.loads((out / "report.json").read_text())["rows"]}
    assert rows["fp16"]["top1_drop"] == round(rows["fp32"]["top1"] - rows["fp16"]["top1"], 3)
    assert "top1_drop" not in rows["fp32"] and "| drop |" in (out / "report.md").read_text()


def test_bench_standalone_without_an_fp32_teacher_uses_the_teacher_it_has(finished_run, tmp_path):
    """An FP16 teacher beside an FP32 student (as with engines of different precisions): agreement and
    speedup still come out, against that teacher, and the report says so."""
    from lfcc_pipeline.calib.fp16 import convert_fp16
    from lfcc_pipeline.calib.qdq import QuantSpec

    teacher16 = tmp_path / "teacher.fp16.onnx"
    data = np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    convert_fp16(finished_run / "export" / "teacher.onnx", teacher16, data, QuantSpec(tool="ort"), "teacher")
    out = tmp_path / "report"
    r = cli("bench", "--model", str(finished_run / "export" / "student.onnx"), "--model", str(teacher16),
            "--data", "fashion-mini", "--out", str(out), "--bench-iters", "5", "--bench-max-images", "256")  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    rows = {row["model"]: row for row in report["rows"]}
    assert report["data"]["agreement_reference"] == "teacher.fp16.onnx" and rows["teacher"]["agreement"] == 100.0
    assert 0 < rows["student"]["agreement"] <= 100
    assert rows["student"]["speedup_vs_teacher"] is not None
    assert rows["student"]["speedup_reference"] == "teacher ort-fp16"


def test_bench_on_an_engine_without_tensorrt_is_one_line(finished_run, tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    from lfcc_pipeline.core.onnx_meta import read_metadata

    onnx_path = finished_run / "export" / "student.onnx"
    engine = tmp_path / "student.trt-fp16.engine"
    engine.write_bytes(b"an engine built elsewhere")
    meta = {k: v for k, v in read_metadata(onnx_path).items() if k.startswith("lfcc.")}
    (tmp_path / "student.trt-fp16.engine.json").write_text(json.dumps({"tensorrt": "10.3.0", "metadata": meta}))
    r = cli("bench", "--model", str(engine), "--model", str(onnx_path), "--data", "fashion-mini",
            "--out", str(tmp_path / "report"))  # fmt: skip
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "cannot benchmark student.trt-fp16.engine: TensorRT is not installed" in lines[0]
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("resize", ["stretch", "center_crop"])
def test_bundle_readme_example_preprocesses_like_predict(finished_run, tmp_path, monkeypatch, resize):
    """The Python example in bundle/README.md, run in the bundle as an app would, gives the input
    that predict's Preprocess makes, for both resize modes, on a non-square image."""
    import onnxruntime as ort

    from lfcc_pipeline.core.preprocess import Preprocess

    b = tmp_path / "bundle"
    shutil.copytree(finished_run / "bundle", b)
    pre = json.loads((b / "preprocess.json").read_text())
    pre.update(resize=resize, crop_pct=0.875 if resize == "center_crop" else 1.0)
    (b / "preprocess.json").write_text(json.dumps(pre))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (45, 60, 3), dtype=np.uint8)).save(b / "image.jpg")
    code = (b / "README.md").read_text().split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(b)
    ns: dict = {}
    exec(code, ns)  # our own generated example
    expected = Preprocess.from_dict(pre).apply(Image.open(b / "image.jpg"))
    assert ns["x"].shape == expected.shape and np.allclose(ns["x"], expected, atol=1e-5)
    session = ort.InferenceSession(str(b / "student.onnx"), providers=["CPUExecutionProvider"])
    assert np.allclose(ns["logits"], session.run(None, {"input": expected})[0][0], atol=1e-4)
