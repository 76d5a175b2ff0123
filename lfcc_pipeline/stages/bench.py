"""Stage `bench`: teacher and student on every target, on the test split; report.json/md/png."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

import numpy as np
import torch

from lfcc_pipeline.benchmark.report import write_report
from lfcc_pipeline.benchmark.suite import Candidate, run_suite
from lfcc_pipeline.data.transforms import Normalization, to_float
from lfcc_pipeline.models.factory import count_params, normalization
from lfcc_pipeline.models.weights import load_model
from lfcc_pipeline.pipeline.config import RunConfig, as_dict
from lfcc_pipeline.pipeline.env import probe
from lfcc_pipeline.pipeline.stage import Stage, StageContext, StageResult
from lfcc_pipeline.predict import ort_providers
from lfcc_pipeline.runtimes.ort_runner import OrtRunner
from lfcc_pipeline.runtimes.targets import parse_target
from lfcc_pipeline.runtimes.torch_runner import TorchRunner
from lfcc_pipeline.stages import common

_logger = logging.getLogger(__name__)
REPORT_JSON, REPORT_MD, REPORT_PNG = "bench/report.json", "bench/report.md", "bench/report.png"
EVAL_BATCH = 64


def config_slice(cfg: RunConfig) -> dict:
    return {"bench": as_dict(cfg.bench), "data": common.dataset(cfg).fingerprint, "device": cfg.device}


def _numpy_preprocess(norm: Normalization):
    return lambda raw: norm(raw).numpy().astype(np.float32, copy=False)


def _mb(path) -> float:
    return path.stat().st_size / 1e6


def _candidates(cfg: RunConfig, ctx: StageContext) -> tuple[list[Candidate], torch.nn.Module, Normalization]:
    cands = []
    teacher_model = None
    providers = ort_providers(cfg.bench.ort_provider) if any(t.startswith("ort") for t in cfg.bench.targets) else []
    for role, weights_rel, onnx_rel in (
        ("teacher", common.TEACHER_WEIGHTS, common.TEACHER_ONNX),
        ("student", common.STUDENT_WEIGHTS, common.STUDENT_ONNX),
    ):
        weights = common.require(ctx.run_dir, weights_rel, role)
        model, recipe = load_model(weights)
        norm = normalization(model)
        if role == "teacher":
            teacher_model, teacher_norm = model, norm
        params = count_params(model) / 1e6
        for name in cfg.bench.targets:
            t = parse_target(name)
            if t.runtime == "torch":
                make = functools.partial(TorchRunner, model, ctx.device)
                size = _mb(weights)
            else:
                onnx_path = common.require(ctx.run_dir, onnx_rel, "export")
                make = functools.partial(OrtRunner, onnx_path, "fp32", providers, threads=cfg.bench.threads)
                size = _mb(onnx_path)
            cands.append(
                Candidate(role, recipe.name, name, t.runtime, t.precision, make, _numpy_preprocess(norm), size, params)
            )
    return cands, teacher_model, teacher_norm


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
    cands, teacher, teacher_norm = _candidates(cfg, ctx)
    ref_runner = TorchRunner(teacher, ctx.device)
    reference = torch.cat([torch.from_numpy(ref_runner(teacher_norm(raw).numpy())) for raw, _ in data()])
    rows = run_suite(cands, data, len(test), reference, cfg.bench)
    info = {
        "spec": ds.name,
        "split": "test",
        "images": len(split),
        "img_size": size,
        "classes": ds.num_classes,
        "throughput_batch": cfg.bench.batch_size,
    }
    write_report(ctx.path("bench"), rows, probe(), info)
    best = {r["model"]: r for r in rows if r.get("top1") is not None}
    summary = ", ".join(f"{m} top-1 {r['top1']:.2f}%" for m, r in best.items())
    return StageResult(
        outputs=[REPORT_JSON, REPORT_MD, REPORT_PNG], metrics={"rows": len(rows)}, summary=f"bench: {summary}"
    )


STAGE = Stage(
    "bench",
    ("teacher", "distill", "export"),
    run,
    config_slice,
    help="measure accuracy and latency of teacher and student on every target",
)
