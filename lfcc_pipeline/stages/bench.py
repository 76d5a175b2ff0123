"""Stage `bench`: teacher and student on every target, on the test split; report.json/md/png."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

import numpy as np
import torch

from lfcc_pipeline.benchmark.drops import mark_drops
from lfcc_pipeline.benchmark.report import write_report
from lfcc_pipeline.benchmark.suite import Candidate, run_suite
from lfcc_pipeline.core.config import RunConfig, as_dict
from lfcc_pipeline.core.errors import StageFailed
from lfcc_pipeline.data.transforms import Normalization, to_float
from lfcc_pipeline.models.factory import count_params, normalization
from lfcc_pipeline.models.weights import load_model
from lfcc_pipeline.pipeline.env import probe
from lfcc_pipeline.pipeline.stage import Stage, StageContext, StageResult
from lfcc_pipeline.predict import ort_providers
from lfcc_pipeline.runtimes.ort_runner import OrtRunner
from lfcc_pipeline.runtimes.targets import parse_target
from lfcc_pipeline.runtimes.torch_runner import TorchRunner
from lfcc_pipeline.runtimes.trt_runner import TrtRunner
from lfcc_pipeline.stages import build, calibrate, common
from lfcc_pipeline.training.evaluate import topk_accuracy

_logger = logging.getLogger(__name__)
REPORT_JSON, REPORT_MD, REPORT_PNG = "bench/report.json", "bench/report.md", "bench/report.png"
EVAL_BATCH = 64
TRT_QDQ_TARGET = "trt-int8 (qdq via ort)"  # the TensorRT-flavour Q/DQ model run by ONNX Runtime: accuracy only
CALIB_FLAVOUR = {"ort-int8": "int8.cpu", "ort-fp16": "fp16"}


def config_slice(cfg: RunConfig) -> dict:
    return {
        "bench": as_dict(cfg.bench),
        "data": common.dataset(cfg).fingerprint,
        "device": cfg.device,
        "calib": [cfg.calib.teacher, cfg.calib.max_int8_drop, cfg.calib.strict],
    }


def _numpy_preprocess(norm: Normalization):
    return lambda raw: norm(raw).numpy().astype(np.float32, copy=False)


def _mb(path) -> float:
    return path.stat().st_size / 1e6


def _candidates(cfg: RunConfig, ctx: StageContext) -> tuple[list[Candidate], dict[str, tuple]]:
    """The (model, target) candidates, and each role's FP32 PyTorch model with its normalisation."""
    cands, models = [], {}
    providers = ort_providers(cfg.bench.ort_provider) if any(t.startswith("ort") for t in cfg.bench.targets) else []
    for role, weights_rel, onnx_rel in (
        ("teacher", common.TEACHER_WEIGHTS, common.TEACHER_ONNX),
        ("student", common.STUDENT_WEIGHTS, common.STUDENT_ONNX),
    ):
        weights = common.require(ctx.run_dir, weights_rel, role)
        model, recipe = load_model(weights)
        norm = normalization(model)
        params = count_params(model) / 1e6
        for name in cfg.bench.targets:
            t = parse_target(name)
            if name in CALIB_FLAVOUR and role not in calibrate.roles(cfg):
                continue  # --no-calib-teacher: no reduced-precision teacher to measure
            if t.runtime == "torch":
                make = functools.partial(TorchRunner, model, ctx.device)
                size = _mb(weights)
            elif t.runtime == "trt":
                if (role, name) not in build.builds(cfg):
                    continue  # --no-calib-teacher: no INT8 teacher engine
                engine = common.require(ctx.run_dir, build.engine_rel(role, name), "build")
                make = functools.partial(TrtRunner, engine)
                size = _mb(engine)
            else:
                rel, stage = (
                    (calibrate.model_rel(role, CALIB_FLAVOUR[name]), "calibrate")
                    if name in CALIB_FLAVOUR
                    else (onnx_rel, "export")
                )
                onnx_path = common.require(ctx.run_dir, rel, stage)
                make = functools.partial(OrtRunner, onnx_path, t.precision, providers, threads=cfg.bench.threads)
                size = _mb(onnx_path)
            cands.append(
                Candidate(role, recipe.name, name, t.runtime, t.precision, make, _numpy_preprocess(norm), size, params)
            )
        if role == "student" and any(parse_target(n).precision == "int8" for n in cfg.bench.targets):
            qdq = common.require(ctx.run_dir, calibrate.model_rel(role, "int8.trt"), "calibrate")
            make = functools.partial(OrtRunner, qdq, "int8", providers, threads=cfg.bench.threads)
            note = "accuracy preview"
            cands.append(
                Candidate(role, recipe.name, TRT_QDQ_TARGET, "ort", "int8", make, _numpy_preprocess(norm), _mb(qdq),
                          params, note=note, accuracy_only=True)
            )  # fmt: skip
        models[role] = (model, norm)
    return cands, models


def _fp32_top1(models: dict, data, reference: torch.Tensor, ctx: StageContext) -> dict[str, float]:
    """Top-1 of the FP32 PyTorch teacher (from the reference logits) and student on the bench images."""
    labels = torch.cat([y for _, y in data()])
    student, norm = models["student"]
    runner = TorchRunner(student, ctx.device)
    logits = torch.cat([torch.from_numpy(runner(norm(raw).numpy())) for raw, _ in data()])
    return {"teacher": topk_accuracy(reference, labels, 1), "student": topk_accuracy(logits, labels, 1)}


def run(cfg: RunConfig, ctx: StageContext) -> StageResult:
    ds = common.dataset(cfg)
    size = common.img_size(cfg)
    split = ds.test
    if cfg.bench.max_images is not None and cfg.bench.max_images < len(split):
        split = split.subset(np.arange(cfg.bench.max_images))
    test = common.batches(cfg, split, train=False, batch_size=EVAL_BATCH)

    def data() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in test:
            yield to_float(x, size), y

    if cfg.bench.threads:
        torch.set_num_threads(cfg.bench.threads)
    cands, models = _candidates(cfg, ctx)
    teacher, teacher_norm = models["teacher"]
    ref_runner = TorchRunner(teacher, ctx.device)
    reference = torch.cat([torch.from_numpy(ref_runner(teacher_norm(raw).numpy())) for raw, _ in data()])
    rows = run_suite(cands, data, len(test), reference, cfg.bench)
    over = mark_drops(rows, cfg.calib.max_int8_drop, lambda: _fp32_top1(models, data, reference, ctx))
    info = {
        "spec": ds.name,
        "split": "test",
        "images": len(split),
        "img_size": size,
        "classes": ds.num_classes,
        "throughput_batch": cfg.bench.batch_size,
    }
    if any("top1_drop" in r for r in rows):
        info["max_int8_drop"] = cfg.calib.max_int8_drop
    write_report(ctx.path("bench"), rows, probe(), info)
    for line in over:
        if cfg.calib.strict:
            raise StageFailed(line, "the report marks the row; try another --calib-method or a larger --calib-size")
        _logger.warning("warning: %s", line)
    best: dict[str, dict] = {}
    for r in rows:  # the first measured row per model: the FP32 target the user listed first
        if r.get("top1") is not None:
            best.setdefault(r["model"], r)
    summary = ", ".join(f"{m} top-1 {r['top1']:.2f}%" for m, r in best.items())
    return StageResult(
        outputs=[REPORT_JSON, REPORT_MD, REPORT_PNG], metrics={"rows": len(rows)}, summary=f"bench: {summary}"
    )


STAGE = Stage(
    "bench",
    ("teacher", "distill", "export", "calibrate", "build"),
    run,
    config_slice,
    help="measure accuracy and latency of teacher and student on every target",
)
