"""Stage `calibrate`: the calibration set, INT8 Q/DQ and FP16 models, checked and measured on CPU.

Writes calib/calib.npz, then per model (the student; the teacher too unless --no-calib-teacher):
  calib/<role>.int8.trt.onnx  Q/DQ for TensorRT (symmetric, per-channel weights)
  calib/<role>.int8.cpu.onnx  the flavour ONNX Runtime's CPU provider runs fastest (U8S8 Q/DQ)
  calib/<role>.fp16.onnx      FP16 with LayerNorm/Softmax/reductions in FP32, FP32 inputs/outputs
  calib/<role>.int8.trt-fp16.onnx  the TensorRT flavour with FP16 outside Q/DQ (strongly typed TensorRT)
checks each graph against what TensorRT needs (calib/checks.py), and measures the student's
models against the FP32 student on validation images (calib/accuracy.json). Where a student INT8
flavour loses more than --max-int8-drop top-1 points (or where sensitivity is asked for), the layer
sensitivity goes to calib/sensitivity.json/.png, and layers are kept in higher precision, most
sensitive first, until the drop is within the budget (calib/tuning.py); the final model replaces the
all-INT8 one. A budget still not met warns, or fails the stage with --strict.
With --target ov-int8, the final int8.cpu model of each role is converted to OpenVINO IR
(calib/<role>.int8.ov.xml/.bin), measured beside the others (flavour int8.ov) and gated the same way:
OpenVINO reads the Q/DQ pairs as FakeQuantize, so the kept layers stay in higher precision there too.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import torch

from lfcc_pipeline.calib import checks, graph
from lfcc_pipeline.calib.calibset import CalibSet, load_calibset, model_inputs, save_calibset, stratified_indices
from lfcc_pipeline.calib.fp16 import convert_fp16, fp16_tool
from lfcc_pipeline.calib.layers import kept_layers
from lfcc_pipeline.calib.qdq import Produced, QuantSpec, modelopt_version, ort_version, quantize_int8, trt_quantizer
from lfcc_pipeline.calib.qdq_fp16 import fp16_outside_problems, qdq_fp16
from lfcc_pipeline.calib.sensitivity_plot import plot_sensitivity
from lfcc_pipeline.calib.tuning import Tuned, TuneSpec, mixed_line, tune
from lfcc_pipeline.core import layout
from lfcc_pipeline.core.atomic import sha256_file, write_json
from lfcc_pipeline.core.config import RunConfig, as_dict
from lfcc_pipeline.core.errors import ConfigError, DataError, StageFailed
from lfcc_pipeline.core.layout import CALIB_NPZ
from lfcc_pipeline.core.metrics import agreement, topk_accuracy
from lfcc_pipeline.core.onnx_meta import metadata, preprocess_of
from lfcc_pipeline.core.preprocess import Preprocess
from lfcc_pipeline.core.progress import progress
from lfcc_pipeline.core.stage import Stage, StageContext, StageResult
from lfcc_pipeline.data.run_data import batches, dataset
from lfcc_pipeline.data.transforms import Normalization, to_float
from lfcc_pipeline.models.factory import run_img_size
from lfcc_pipeline.runtimes.ort_runner import OrtRunner
from lfcc_pipeline.runtimes.ov_install import openvino_version
from lfcc_pipeline.runtimes.ov_ir import convert_onnx
from lfcc_pipeline.runtimes.ov_runner import OvRunner
from lfcc_pipeline.runtimes.trt_install import needs_calibration

_logger = logging.getLogger(__name__)

FLAVOURS = layout.CALIB_FLAVOURS
PRECISION = {"int8.trt": "int8", "int8.cpu": "int8", "fp16": "fp16"}
OV_FLAVOUR = "int8.ov"  # the OpenVINO IR of int8.cpu (--target ov-int8)
INT8_FLAVOURS = ("int8.trt", "int8.cpu", OV_FLAVOUR)


def wants_ov(cfg: RunConfig) -> bool:
    return "ov-int8" in cfg.bench.targets


def needed(cfg: RunConfig) -> bool:
    return needs_calibration(cfg.bench.targets)


def config_slice(cfg: RunConfig) -> dict:
    c = as_dict(cfg.calib)
    c.pop("strict")  # warn or fail: the same models either way
    if _tune_spec(cfg).mixed_max_layers == 0:
        c.pop("max_int8_drop")  # only a gate (re-applied by bench) without mixed precision
    if cfg.calib.file is not None:
        c["file"] = sha256_file(cfg.calib.file)
    tools = {"onnxruntime": ort_version(), "modelopt": modelopt_version()}
    if wants_ov(cfg):  # absent otherwise: runs without OpenVINO keep their fingerprints
        tools["openvino"] = openvino_version()
    return {
        "calib": c,
        "tools": tools,
        "data": dataset(cfg).fingerprint,
        "data_split": [cfg.data.val_fraction, cfg.seed],
        "seed": cfg.seed,
    }


def _preprocess_of(model, path) -> Preprocess:
    return preprocess_of(metadata(model), path)


def draw(cfg: RunConfig, pre: Preprocess) -> CalibSet:
    """cfg.calib.size class-stratified training images, as the evaluation loader yields them."""
    ds = dataset(cfg)
    labels = ds.train.labels.numpy()
    idx = stratified_indices(labels, ds.num_classes, cfg.calib.size, cfg.seed, ds.classes)
    batches = _batches(cfg, ds.train.subset(idx))
    images = [x.numpy() for x, _ in progress(batches, desc="calibration set", total=len(batches))]
    return CalibSet(
        images=np.concatenate(images),
        labels=labels[idx].astype(np.int64),
        img_size=pre.img_size,
        resize=pre.resize,
        crop_pct=pre.crop_pct,
        mean=tuple(pre.mean),
        std=tuple(pre.std),
        classes=tuple(ds.classes),
        source={"data": ds.name, "fingerprint": ds.fingerprint, "split": "train", "seed": cfg.seed},
    )


def _batches(cfg: RunConfig, split):
    return batches(cfg, split, train=False, img_size=run_img_size(cfg), batch_size=64)


def _calibset(cfg: RunConfig, pre: Preprocess) -> CalibSet:
    c = cfg.calib
    if c.file is None:
        return draw(cfg, pre)
    cs = load_calibset(c.file)
    if len(cs) < c.batch_size:
        raise DataError(
            f"--calib-file {c.file} holds {len(cs)} images, fewer than one calibration batch ({c.batch_size})",
            "use a larger calibration set or a smaller --calib-batch",
        )
    return cs


def _source(cfg: RunConfig, ctx: StageContext, role: str):
    src = layout.require(ctx.run_dir, layout.onnx(role), "export")
    return src, graph.load(src)


def _inputs(cs: CalibSet, src, model, ctx: StageContext, origin: str) -> np.ndarray:
    """The calibration set as this model's inputs (DataError on a size/preprocessing/shape mismatch)."""
    _, dims = graph.input_info(model)
    name = str(src.relative_to(ctx.run_dir))
    return model_inputs(cs, _preprocess_of(model, src), dims, model_name=name, origin=origin)


def _val_subset(cfg: RunConfig):
    ds = dataset(cfg)
    split = ds.val
    n = cfg.calib.eval_images
    if n is not None and n < len(split):
        idx = np.sort(np.random.default_rng([cfg.seed, 0xE7A1]).permutation(len(split))[:n])
        split = split.subset(idx)
    return split


def evaluate(cfg: RunConfig, ctx: StageContext, pre: Preprocess, produced: dict[str, Produced], ov_ir=None) -> dict:
    """Top-1 of the FP32 student and of each of its calibrated models (and its OpenVINO IR `ov_ir`, a
    Produced, where given) on validation images."""
    split = _val_subset(cfg)
    batches = _batches(cfg, split)
    norm = Normalization(tuple(pre.mean), tuple(pre.std))
    runners = {"fp32": OrtRunner(ctx.path(layout.onnx("student")), "fp32")}
    for flavour, p in produced.items():
        runners[flavour] = OrtRunner(p.path, PRECISION[flavour])
    if ov_ir is not None:
        produced = {**produced, OV_FLAVOUR: ov_ir}
        runners[OV_FLAVOUR] = OvRunner(ov_ir.path, "int8", cfg.bench.threads)
    logits: dict[str, list[torch.Tensor]] = {k: [] for k in runners}
    labels = []
    for x, y in progress(batches, desc="calibrate: check accuracy", total=len(batches)):
        inp = norm(to_float(x, pre.img_size)).numpy()
        for k, r in runners.items():
            logits[k].append(torch.from_numpy(r(inp)))
        labels.append(y)
    y = torch.cat(labels)
    out = {k: torch.cat(v) for k, v in logits.items()}
    ref = topk_accuracy(out["fp32"], y, 1)
    result = {"fp32": {"top1": round(ref, 3)}}
    for flavour in produced:
        top1 = topk_accuracy(out[flavour], y, 1)
        result[flavour] = {
            "top1": round(top1, 3),
            "top1_drop": round(ref - top1, 3),
            "agreement_with_fp32": round(agreement(out[flavour], out["fp32"]), 3),
            "tool": produced[flavour].tool,
        }
    return {"split": "val", "images": len(split), "student": result}


def _tune_spec(cfg: RunConfig) -> TuneSpec:
    c = cfg.calib
    return TuneSpec(
        budget=c.max_int8_drop,
        sensitivity=c.sensitivity,
        sensitivity_images=c.sensitivity_images,
        sensitivity_layers=c.sensitivity_layers,
        mixed_max_layers=c.mixed_max_layers,
        threads=cfg.bench.threads,
    )


def _val_arrays(cfg: RunConfig, pre: Preprocess) -> tuple[np.ndarray, np.ndarray]:
    """The accuracy check's validation images as the student's inputs, and their labels."""
    norm = Normalization(tuple(pre.mean), tuple(pre.std))
    xs, ys = [], []
    for x, y in _batches(cfg, _val_subset(cfg)):
        xs.append(norm(to_float(x, pre.img_size)).numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def _tune(cfg: RunConfig, ctx: StageContext, pre: Preprocess, made: dict, accuracy: dict) -> tuple[Tuned, list, list]:
    """Sensitivity and mixed precision for the student's INT8 models: (result, outputs written, one line per
    flavour the budget search ran for). A mixed model replaces the all-INT8 file of its flavour."""
    spec = _tune_spec(cfg)
    qdq = {f: made[("student", f)].path for f in ("int8.trt", "int8.cpu")}
    over = [f for f in qdq if accuracy["student"][f]["top1_drop"] > spec.budget]
    tuned = Tuned()
    if spec.sensitivity or (over and spec.mixed_max_layers > 0):
        x, y = _val_arrays(cfg, pre)
        tuned = tune(qdq, ctx.path(layout.onnx("student")), x, y, spec)
    lines = []
    for flavour, m in tuned.mixed.items():
        if m.kept:
            graph.save(m.model, qdq[flavour])
            made[("student", flavour)].notes.append(f"{len(m.kept)} layer(s) kept in higher precision")
            checks.verify_produced(made[("student", flavour)], "student")
        lines.append(mixed_line("student", flavour, m, spec.budget, spec.mixed_max_layers))
    paths = (layout.CALIB_SENSITIVITY, layout.CALIB_SENSITIVITY_PNG)
    if not tuned.sensitivity:
        for rel in paths:  # an earlier run's report would describe other models
            ctx.path(rel).unlink(missing_ok=True)
        return tuned, [], lines
    report = {"model": "student", "split": "val", "flavours": tuned.sensitivity,
              "mixed": {f: m.describe() for f, m in tuned.mixed.items()}}  # fmt: skip
    write_json(ctx.path(paths[0]), report)
    plot_sensitivity(report, ctx.path(paths[1]))
    return tuned, list(paths), lines


def _check_quantizable(cfg: RunConfig, model, src) -> None:
    """ConfigError before anything is written when sensitivity is asked of a model with no weighted op."""
    if _tune_spec(cfg).sensitivity and not any(n.op_type in checks.WEIGHTED_OPS for n in model.graph.node):
        raise ConfigError(
            f"sensitivity asked for, but {src.name} has no quantizable layer (no Conv/ConvTranspose/Gemm/MatMul)",
            "turn sensitivity off for this model",
        )


def gate(cfg: RunConfig, accuracy: dict) -> list[str]:
    """Lines for every INT8 student model whose top-1 drop exceeds --max-int8-drop."""
    limit = cfg.calib.max_int8_drop
    over = []
    for flavour in INT8_FLAVOURS:
        r = accuracy["student"].get(flavour)
        if r is not None and r["top1_drop"] > limit:
            over.append(
                f"student {flavour} loses {r['top1_drop']:.2f} top-1 points ({r['top1']:.2f}% vs FP32 "
                f"{accuracy['student']['fp32']['top1']:.2f}% on {accuracy['images']} validation images)"
            )
    return over


def _strongly_typed_forms(ctx: StageContext, cs: CalibSet, sources: dict, made: dict, origin: str) -> list[str]:
    """calib/<role>.int8.trt-fp16.onnx, the FP16-outside-Q/DQ form of each final TensorRT-flavour model."""
    written = []
    for role, (src, model) in sources.items():
        rel = layout.calib_model(role, layout.CALIB_TRT_FP16)
        p = qdq_fp16(made[(role, "int8.trt")].path, ctx.path(rel), _inputs(cs, src, model, ctx, origin), role)
        problems = fp16_outside_problems(graph.load(p.path))
        if problems:  # e.g. a node kept FP32 for range: still a valid model, but say so
            _logger.warning(
                "warning: %s: %s%s", rel, problems[0], f" (+{len(problems) - 1} more)" if problems[1:] else ""
            )
        made[(role, p.flavour)] = p
        written.append(rel)
        _logger.info("calibrate: %s (%s, %.1f s)", rel, p.tool, p.seconds)
    return written


def _describe(p: Produced) -> dict:
    if p.flavour == "fp16":
        return p.describe()
    return {**p.describe(), "kept_layers": kept_layers(graph.load(p.path))}


def _budget_lines(cfg: RunConfig, tuned: Tuned, lines: list[str]) -> None:
    """Log the budget search's lines; an unmet budget warns, or fails the stage with --strict."""
    for (flavour, m), line in zip(tuned.mixed.items(), lines, strict=True):
        if m.met:
            _logger.info("calibrate: %s", line)
        elif cfg.calib.strict:
            raise ConfigError(line, f"raise --max-int8-drop or allow more layers in higher precision ({flavour})")
        else:
            _logger.warning("warning: %s", line)


def _make_models(ctx: StageContext, cs: CalibSet, sources: dict, origin: str, s: QuantSpec) -> dict:
    """Every role's all-INT8 (both flavours) and FP16 models, each checked: {(role, flavour): Produced}."""
    made = {}
    for role, (src, model) in sources.items():
        x = _inputs(cs, src, model, ctx, origin)
        for flavour in FLAVOURS:
            dst = ctx.path(layout.calib_model(role, flavour))
            if flavour == "fp16":
                p = convert_fp16(src, dst, x, s, role)
            else:
                p = quantize_int8(src, dst, x, s, flavour.split(".")[1], role)
            checks.verify_produced(p, role)
            made[(role, flavour)] = p
            _logger.info(
                "calibrate: %s (%s, %.1f s, %.2f MB)%s",
                layout.calib_model(role, flavour),
                p.tool,
                p.seconds,
                dst.stat().st_size / 1e6,
                f" — {'; '.join(p.notes)}" if p.notes else "",
            )
    return made


def _rel(ctx: StageContext, path) -> str:
    return str(path.relative_to(ctx.run_dir))


def _openvino_ir(cfg: RunConfig, ctx: StageContext, made: dict) -> dict[str, Produced]:
    """--target ov-int8: calib/<role>.int8.ov.xml/.bin from each role's final int8.cpu model, {role: Produced}."""
    if not wants_ov(cfg):
        return {}
    out = {}
    for (role, flavour), p in made.items():
        if flavour != "int8.cpu":
            continue
        t0 = time.perf_counter()
        xml = ctx.path(layout.ov_ir(role, "int8"))
        convert_onnx(p.path, xml)
        out[role] = Produced(xml, OV_FLAVOUR, f"openvino {openvino_version()} from {p.path.name}",
                             time.perf_counter() - t0, list(p.notes))  # fmt: skip
        _logger.info("calibrate: %s (%s, %.1f s)", layout.ov_ir(role, "int8"), out[role].tool, out[role].seconds)
    return out


def run(cfg: RunConfig, ctx: StageContext) -> StageResult:
    s = QuantSpec.from_config(cfg.calib)
    student_onnx = layout.require(ctx.run_dir, layout.onnx("student"), "export")
    student_pre = _preprocess_of(graph.load(student_onnx), student_onnx)
    cs = _calibset(cfg, student_pre)
    origin = str(cfg.calib.file) if cfg.calib.file else CALIB_NPZ
    sources = {role: _source(cfg, ctx, role) for role in layout.calib_roles(cfg)}
    for role in {"student", "teacher"} - set(sources):  # an earlier run's models of a role skipped now
        for flavour in (*FLAVOURS, layout.CALIB_TRT_FP16):
            ctx.path(layout.calib_model(role, flavour)).unlink(missing_ok=True)
    for src, model in sources.values():  # fail on a mismatch before anything is written
        _inputs(dataclasses.replace(cs, images=cs.images[:1]), src, model, ctx, origin)
    _check_quantizable(cfg, sources["student"][1], sources["student"][0])
    save_calibset(ctx.path(CALIB_NPZ), cs)
    _logger.info(
        "calibrate: %d images (%s), method %s, TensorRT flavour by %s, FP16 by %s",
        len(cs),
        "from " + origin if cfg.calib.file else "class-stratified from the training split",
        s.method,
        trt_quantizer(s),
        fp16_tool(s),
    )
    outputs, made = [CALIB_NPZ], _make_models(ctx, cs, sources, origin, s)
    outputs += [layout.calib_model(r, f) for r, f in made]
    student = {f: made[("student", f)] for f in FLAVOURS}
    accuracy = evaluate(cfg, ctx, student_pre, student)
    tuned, written, lines = _tune(cfg, ctx, student_pre, made, accuracy)
    ov_ir = _openvino_ir(cfg, ctx, made)
    outputs += [rel for p in ov_ir.values() for rel in (_rel(ctx, p.path), layout.ov_bin(_rel(ctx, p.path)))]
    if any(m.kept for m in tuned.mixed.values()) or ov_ir:
        accuracy = evaluate(cfg, ctx, student_pre, student, ov_ir.get("student"))  # the final models
    over = gate(cfg, accuracy)
    outputs += _strongly_typed_forms(ctx, cs, sources, made, origin)
    accuracy.update(
        calib={**cs.meta(), "images": len(cs), "per_class": cs.per_class(), "method": s.method},
        models={
            **{layout.calib_model(r, f): _describe(p) for (r, f), p in made.items()},
            **{_rel(ctx, p.path): p.describe() for p in ov_ir.values()},
        },
        gate={"max_int8_drop": cfg.calib.max_int8_drop, "ok": not over, "over": over},
        mixed={f: m.describe() for f, m in tuned.mixed.items()},
    )
    write_json(ctx.path(layout.CALIB_ACCURACY), accuracy)
    outputs += [layout.CALIB_ACCURACY, *written]
    _budget_lines(cfg, tuned, lines)
    st = accuracy["student"]
    drops = ", ".join(f"{f} {st[f]['top1_drop']:+.2f}" for f in (*FLAVOURS, OV_FLAVOUR) if f in st)
    summary = f"calibrate: student top-1 drop vs FP32 on {accuracy['images']} val images: {drops} points"
    for line in over:
        if cfg.calib.strict:
            raise StageFailed(
                f"{line}, more than --max-int8-drop {cfg.calib.max_int8_drop:g}",
                "try another --calib-method or a larger --calib-size, or raise --max-int8-drop",
            )
        _logger.warning("warning: %s, more than --max-int8-drop %g", line, cfg.calib.max_int8_drop)
    metrics = {f"{f}_top1_drop": st[f]["top1_drop"] for f in (*FLAVOURS, OV_FLAVOUR) if f in st}
    metrics["gate_ok"] = not over
    return StageResult(outputs=outputs, metrics=metrics, summary=summary)


def check(cfg: RunConfig) -> None:
    """A calibration set the training split can hold (size, every class present), before any training."""
    if not needed(cfg) or cfg.calib.file is not None:
        return
    ds = dataset(cfg)
    stratified_indices(ds.train.labels.numpy(), ds.num_classes, cfg.calib.size, cfg.seed, ds.classes)


STAGE = Stage(
    "calibrate",
    ("export",),
    run,
    config_slice,
    needed=needed,
    check=check,
)
