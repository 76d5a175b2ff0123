"""Stage `bench`: teacher and student on every target, on the test split; report.json/md/png."""

from __future__ import annotations

import functools
import json
import logging

import torch

from lfcc_pipeline.benchmark.session import EVAL_BATCH, Reference, numpy_preprocess, run_benchmark
from lfcc_pipeline.benchmark.suite import Candidate
from lfcc_pipeline.calib.layers import KEPT_META
from lfcc_pipeline.core import layout
from lfcc_pipeline.core.config import RunConfig, as_dict
from lfcc_pipeline.core.errors import StageFailed
from lfcc_pipeline.core.metrics import topk_accuracy
from lfcc_pipeline.core.onnx_meta import read_metadata
from lfcc_pipeline.core.stage import Stage, StageContext, StageResult
from lfcc_pipeline.core.targets import parse_target
from lfcc_pipeline.data.run_data import batches, dataset
from lfcc_pipeline.models.factory import count_params, normalization, run_img_size
from lfcc_pipeline.models.weights import load_model
from lfcc_pipeline.runtimes.ort_providers import ort_providers
from lfcc_pipeline.runtimes.ort_runner import OrtRunner
from lfcc_pipeline.runtimes.ov_runner import OvRunner
from lfcc_pipeline.runtimes.targets import check_runnable
from lfcc_pipeline.runtimes.torch_runner import TorchRunner
from lfcc_pipeline.runtimes.trt_runner import TrtRunner
from lfcc_pipeline.tracking.open import log_report

_logger = logging.getLogger(__name__)
TRT_QDQ_TARGET = "trt-int8 (qdq via ort)"  # the TensorRT-flavour Q/DQ model run by ONNX Runtime: accuracy only


def config_slice(cfg: RunConfig) -> dict:
    return {
        "bench": as_dict(cfg.bench),
        "data": dataset(cfg).fingerprint,
        "device": cfg.device,
        "calib": [cfg.calib.teacher, cfg.calib.max_int8_drop, cfg.calib.strict],
    }


def _mb(path) -> float:
    return path.stat().st_size / 1e6


def _kept(ctx: StageContext, role: str, name: str) -> dict:
    """layers_kept/kept_layers of an INT8 row: the layers its calibrated model keeps in higher precision."""
    t = parse_target(name)
    if t.precision != "int8":
        return {}
    path = ctx.path(layout.calib_model(role, t.calib_flavour))  # trt-int8 engines: built from int8.trt
    kept = json.loads(read_metadata(path).get(KEPT_META) or "[]") if path.is_file() else []
    return {"layers_kept": len(kept), "kept_layers": [k.get("module") or k["node"] for k in kept]}


def _sensitivity(ctx: StageContext) -> dict:
    """The report's summary of calib/sensitivity.json: per flavour, the three most sensitive layers."""
    path = ctx.path(layout.CALIB_SENSITIVITY)
    if not path.is_file():
        return {}
    report = json.loads(path.read_text())
    return {"sensitivity": {f: [[r.get("module") or r["node"], r["agreement_gain"]] for r in v["layers"][:3]]
                            for f, v in report.get("flavours", {}).items()}}  # fmt: skip


def _runner(cfg: RunConfig, ctx: StageContext, role: str, name: str, model, weights, providers):
    """(runner factory, file size in MB) of `role` on target `name`, or None where the run made no such model."""
    t = parse_target(name)
    if t.runtime == "torch":
        return functools.partial(TorchRunner, model, ctx.device), _mb(weights)
    if t.needs_calibrate and t.runtime in ("ort", "ov") and role not in layout.calib_roles(cfg):
        return None  # --no-calib-teacher: no reduced-precision teacher to measure
    if t.runtime == "trt":
        if (role, name) not in layout.engine_builds(cfg):
            return None  # --no-calib-teacher: no INT8 teacher engine
        engine = layout.require(ctx.run_dir, layout.engine(role, name), "build")
        return functools.partial(TrtRunner, engine), _mb(engine)
    if t.runtime == "ov":
        xml = layout.require(
            ctx.run_dir, layout.ov_ir(role, t.precision), "calibrate" if t.needs_calibrate else "export"
        )
        size = _mb(xml) + _mb(xml.with_suffix(".bin"))
        return functools.partial(OvRunner, xml, t.precision, threads=cfg.bench.threads), size
    if t.needs_calibrate:
        onnx_path = layout.require(ctx.run_dir, layout.calib_model(role, t.calib_flavour), "calibrate")
    else:
        onnx_path = layout.require(ctx.run_dir, layout.onnx(role), "export")
    return functools.partial(OrtRunner, onnx_path, t.precision, providers, threads=cfg.bench.threads), _mb(onnx_path)


def _candidates(cfg: RunConfig, ctx: StageContext) -> tuple[list[Candidate], dict[str, tuple]]:
    """The (model, target) candidates, and each role's FP32 PyTorch model with its normalisation."""
    cands, models = [], {}
    providers = (
        ort_providers(cfg.bench.ort_provider)
        if any(parse_target(t).runtime == "ort" for t in cfg.bench.targets)
        else []
    )
    for role in layout.ROLES:
        weights = layout.require(ctx.run_dir, layout.weights(role), role)
        model, recipe = load_model(weights)
        norm = normalization(model)
        params = count_params(model) / 1e6
        for name in cfg.bench.targets:
            made = _runner(cfg, ctx, role, name, model, weights, providers)
            if made is not None:
                t = parse_target(name)
                cands.append(Candidate(role, recipe.name, name, t.runtime, t.precision, made[0],
                                       numpy_preprocess(norm), made[1], params, extra=_kept(ctx, role, name)))  # fmt: skip
        if role == "student" and any(parse_target(n).precision == "int8" for n in cfg.bench.targets):
            qdq = layout.require(ctx.run_dir, layout.calib_model(role, "int8.trt"), "calibrate")
            make = functools.partial(OrtRunner, qdq, "int8", providers, threads=cfg.bench.threads)
            note = "accuracy preview"
            cands.append(
                Candidate(role, recipe.name, TRT_QDQ_TARGET, "ort", "int8", make, numpy_preprocess(norm), _mb(qdq),
                          params, note=note, accuracy_only=True, extra=_kept(ctx, role, "trt-int8"))
            )  # fmt: skip
        models[role] = (model, norm)
    return cands, models


def _logits(model, norm, device, data) -> torch.Tensor:
    runner = TorchRunner(model, device)
    return torch.cat([torch.from_numpy(runner(norm(raw).numpy())) for raw, _ in data()])


def run(cfg: RunConfig, ctx: StageContext) -> StageResult:
    ds = dataset(cfg)
    size = run_img_size(cfg)
    if cfg.bench.threads:
        torch.set_num_threads(cfg.bench.threads)
    cands, models = _candidates(cfg, ctx)

    def fp32_top1(data, reference) -> dict[str, float]:
        """Top-1 of the FP32 PyTorch teacher (from the reference logits) and student on the bench images."""
        labels = torch.cat([y for _, y in data()])
        student = _logits(*models["student"], ctx.device, data)
        return {"teacher": topk_accuracy(reference, labels, 1), "student": topk_accuracy(student, labels, 1)}

    rows, over = run_benchmark(
        cands, ds, size, lambda split: batches(cfg, split, train=False, img_size=size, batch_size=EVAL_BATCH),
        lambda data: Reference(_logits(*models["teacher"], ctx.device, data)), cfg.bench, ctx.path("bench"),
        info=_sensitivity(ctx), max_drop=cfg.calib.max_int8_drop, fp32_top1=fp32_top1,
    )  # fmt: skip
    log_report(cfg, ctx.run_dir)
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
        outputs=[layout.REPORT_JSON, layout.REPORT_MD, layout.REPORT_PNG],
        metrics={"rows": len(rows)},
        summary=f"bench: {summary}",
    )


def check(cfg: RunConfig) -> None:
    """Every target must run here once a run reaches bench (TargetUnavailable otherwise)."""
    check_runnable(cfg.bench.targets, cfg.bench.ort_provider)


STAGE = Stage(
    "bench",
    ("teacher", "distill", "export", "calibrate", "build"),
    run,
    config_slice,
    check=check,
    check_unless_reached=False,
)
