"""Stage `bundle`: what an app needs to ship the student, runnable with ONNX Runtime alone (or OpenVINO alone,
for the OpenVINO IR files a run with an ov-* target adds)."""

from __future__ import annotations

import json

from lfcc_pipeline.core import layout
from lfcc_pipeline.core.atomic import write_bytes, write_json, write_text
from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.core.onnx_meta import preprocess_of, read_metadata
from lfcc_pipeline.core.stage import Stage, StageContext, StageResult
from lfcc_pipeline.runtimes.trt_install import needs_calibration
from lfcc_pipeline.tracking.mlflow import open_mlflow

# run-directory file -> name in the bundle (optional ones are copied where calibrate made them)
MODELS = {
    layout.onnx("student"): "student.onnx",
    layout.calib_model("student", "int8.cpu"): "student.int8.onnx",
    layout.calib_model("student", "fp16"): "student.fp16.onnx",
    layout.calib_model("student", "int8.trt"): "student.int8.qdq.onnx",
}
# the OpenVINO IR (.xml + .bin), copied where the run has an ov-* target
OV_MODELS = {layout.ov_ir("student", "fp32"): "student.xml", layout.ov_ir("student", "int8"): "student.int8.xml"}
PREPROCESS = """pre = json.load(open("preprocess.json")); labels = json.load(open("labels.json"))
im, s = Image.open("image.jpg").convert("RGB"), pre["img_size"]
resample = getattr(Image, pre["interpolation"].upper())
if pre["resize"] == "center_crop":  # shorter side to s / crop_pct, then the centre s x s square
    short, (w, h) = round(s / pre["crop_pct"]), im.size
    size = (short, max(short, round(h * short / w))) if w <= h else (max(short, round(w * short / h)), short)
    im = im.resize(size, resample)
    left, top = (im.width - s) // 2, (im.height - s) // 2
    im = im.crop((left, top, left + s, top + s))
else:  # "stretch": the whole image to s x s
    im = im.resize((s, s), resample)
x = (np.asarray(im, np.float32) * pre["scale"] - np.float32(pre["mean"])) / np.float32(pre["std"])
x = x.transpose(2, 0, 1)[None].astype(np.float32)"""
OV_README = """
Or with OpenVINO (`pip install openvino`), numpy and Pillow only, on the CPU (`{ov_model}`; use
`student.xml` for FP32):

```python
import json, numpy as np, openvino as ov
from PIL import Image

{preprocess}
compiled = ov.Core().compile_model("{ov_model}", "CPU", {{"PERFORMANCE_HINT": "LATENCY"}})
logits = compiled(x)[0][0]
print(labels[int(logits.argmax())])
```
"""
README = """# {name} — student model bundle

Made by lfcc-pipeline from teacher `{teacher}` ({method} distillation) on `{data}`.

| file | what |
| --- | --- |
{rows}| preprocess.json | how to turn an image into the model input |
| labels.json | class names, index = output position |

Input `{input}`: float32 NCHW (N, 3, {size}, {size}), RGB, scaled by 1/255, normalised with the mean
and std below; output `{output}`: logits (N, {classes}).

```json
{pre}
```

Run it with ONNX Runtime, numpy and Pillow only:

```python
import json, numpy as np, onnxruntime as ort
from PIL import Image

{preprocess}
session = ort.InferenceSession("student.onnx", providers=["CPUExecutionProvider"])
logits = session.run(None, {{"{input}": x}})[0][0]
print(labels[int(logits.argmax())])
```

(`resize` is "{resize}" here: {resize_note}.) Or: `lfcc-pipeline predict --bundle . image.jpg`.
{openvino}"""
WHAT = {
    "student.onnx": "the student, FP32",
    "student.int8.onnx": "INT8 for ONNX Runtime on CPUs",
    "student.fp16.onnx": "FP16 weights and activations (FP32 I/O), e.g. for GPUs",
    "student.int8.qdq.onnx": "INT8 Q/DQ for TensorRT (build the engine on the device)",
    "student.xml": "the student, FP32, OpenVINO IR (weights in student.bin)",
    "student.int8.xml": "INT8 for OpenVINO on CPUs, IR (weights in student.int8.bin)",
}


def config_slice(cfg: RunConfig) -> dict:
    c = {"bundle": 1, "calibrated": needs_calibration(cfg.bench.targets)}
    if layout.ov_targets(cfg):
        c["openvino"] = sorted(layout.ov_targets(cfg))
    return c


def _openvino_files(cfg: RunConfig, ctx: StageContext) -> list[tuple[str, str]]:
    """(run-directory file, bundle name) of the OpenVINO IR this run's targets made current (.xml and .bin)."""
    current = []
    if layout.ov_targets(cfg):
        current.append(layout.ov_ir("student", "fp32"))
    if "ov-int8" in cfg.bench.targets:
        current.append(layout.ov_ir("student", "int8"))
    pairs = []
    for rel in current:
        if ctx.path(rel).is_file():
            name = OV_MODELS[rel]
            pairs += [(rel, name), (layout.ov_bin(rel), layout.ov_bin(name))]
    return pairs


def run(cfg: RunConfig, ctx: StageContext) -> StageResult:
    src = layout.require(ctx.run_dir, layout.onnx("student"), "export")
    meta = read_metadata(src)
    pre = preprocess_of(meta, src)
    labels = json.loads(meta["lfcc.labels"])
    outputs, rows = [], ""
    for rel, name in MODELS.items():
        path = ctx.path(rel)
        # calib/ files are only current when this run's targets had calibrate run (else an older export's)
        if path.is_file() and (rel == layout.onnx("student") or needs_calibration(cfg.bench.targets)):
            write_bytes(ctx.path(f"bundle/{name}"), path.read_bytes())
            outputs.append(f"bundle/{name}")
            rows += f"| {name} | {WHAT[name]} ({path.stat().st_size / 1e6:.1f} MB) |\n"
    ov_files = _openvino_files(cfg, ctx)
    for rel, name in ov_files:
        path = ctx.path(rel)
        write_bytes(ctx.path(f"bundle/{name}"), path.read_bytes())
        outputs.append(f"bundle/{name}")
        if name in WHAT:
            size = path.stat().st_size + ctx.path(layout.ov_bin(rel)).stat().st_size
            rows += f"| {name} | {WHAT[name]} ({size / 1e6:.1f} MB) |\n"
    xmls = [name for _, name in ov_files if name.endswith(".xml")]
    openvino = OV_README.format(ov_model=xmls[-1], preprocess=PREPROCESS) if xmls else ""
    write_json(ctx.path("bundle/preprocess.json"), json.loads(pre.to_json()))
    write_json(ctx.path("bundle/labels.json"), labels)
    resize_note = (
        "the whole image is resized to img_size x img_size"
        if pre.resize == "stretch"
        else f"the shorter side is resized to img_size / {pre.crop_pct} and the centre img_size square is cropped"
    )
    write_text(
        ctx.path("bundle/README.md"),
        README.format(
            name=meta.get("lfcc.model", "student"), teacher=cfg.models.teacher, method=cfg.distill.method,
            data=cfg.data.spec, rows=rows, input="input", output="logits", size=pre.img_size, classes=len(labels),
            pre=pre.to_json(), resize=pre.resize, resize_note=resize_note, preprocess=PREPROCESS, openvino=openvino,
        ),
    )  # fmt: skip
    outputs += ["bundle/preprocess.json", "bundle/labels.json", "bundle/README.md"]
    tracker = open_mlflow(cfg, ctx.run_dir, "bundle")  # --mlflow: the bundle as the run's artifacts
    tracker.artifact(ctx.path("bundle"), "bundle")
    tracker.close()
    for stale in ctx.path("bundle").glob("*.*"):  # models an earlier run put here and this one did not
        if stale.suffix in (".onnx", ".xml", ".bin") and f"bundle/{stale.name}" not in outputs:
            stale.unlink()
    n = sum(o.endswith((".onnx", ".xml")) for o in outputs)
    return StageResult(outputs=outputs, summary=f"bundle: {n} model(s) in {ctx.path('bundle')}")


STAGE = Stage("bundle", ("export", "calibrate"), run, config_slice)
