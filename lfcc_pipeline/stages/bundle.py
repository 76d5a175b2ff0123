"""Stage `bundle`: what an app needs to ship the student, runnable with ONNX Runtime alone."""

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

pre = json.load(open("preprocess.json")); labels = json.load(open("labels.json"))
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
x = x.transpose(2, 0, 1)[None].astype(np.float32)
session = ort.InferenceSession("student.onnx", providers=["CPUExecutionProvider"])
logits = session.run(None, {{"{input}": x}})[0][0]
print(labels[int(logits.argmax())])
```

(`resize` is "{resize}" here: {resize_note}.) Or: `lfcc-pipeline predict --bundle . image.jpg`.
"""
WHAT = {
    "student.onnx": "the student, FP32",
    "student.int8.onnx": "INT8 for ONNX Runtime on CPUs",
    "student.fp16.onnx": "FP16 weights and activations (FP32 I/O), e.g. for GPUs",
    "student.int8.qdq.onnx": "INT8 Q/DQ for TensorRT (build the engine on the device)",
}


def config_slice(cfg: RunConfig) -> dict:
    return {"bundle": 1, "calibrated": needs_calibration(cfg.bench.targets)}


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
            pre=pre.to_json(), resize=pre.resize, resize_note=resize_note,
        ),
    )  # fmt: skip
    outputs += ["bundle/preprocess.json", "bundle/labels.json", "bundle/README.md"]
    tracker = open_mlflow(cfg, ctx.run_dir, "bundle")  # --mlflow: the bundle as the run's artifacts
    tracker.artifact(ctx.path("bundle"), "bundle")
    tracker.close()
    for stale in ctx.path("bundle").glob("*.onnx"):  # models an earlier run put here and this one did not
        if f"bundle/{stale.name}" not in outputs:
            stale.unlink()
    return StageResult(outputs=outputs, summary=f"bundle: {len(outputs) - 3} model(s) in {ctx.path('bundle')}")


STAGE = Stage("bundle", ("export", "calibrate"), run, config_slice)
