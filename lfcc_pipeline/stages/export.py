"""Stage `export`: student and teacher to ONNX, checked, with parity against PyTorch on real images."""

from __future__ import annotations

import json
import logging

import numpy as np
import torch

from lfcc_pipeline.core.atomic import write_json
from lfcc_pipeline.core.config import RunConfig, as_dict
from lfcc_pipeline.core.errors import StageFailed
from lfcc_pipeline.data.preprocess import Preprocess
from lfcc_pipeline.data.transforms import to_float
from lfcc_pipeline.models.factory import count_params, normalization
from lfcc_pipeline.models.onnx_export import export_onnx
from lfcc_pipeline.models.weights import load_model
from lfcc_pipeline.pipeline.stage import Stage, StageContext, StageResult
from lfcc_pipeline.runtimes.ort_runner import OrtRunner
from lfcc_pipeline.stages import common

_logger = logging.getLogger(__name__)


def config_slice(cfg: RunConfig) -> dict:
    return {"export": as_dict(cfg.export), "data": common.dataset(cfg).fingerprint, "seed": cfg.seed}


def preprocess_for(cfg: RunConfig, model: torch.nn.Module) -> Preprocess:
    """What an app must do to an image before this model sees it (matches our evaluation path)."""
    norm = normalization(model)
    in_memory = common.dataset(cfg).in_memory
    return Preprocess(
        img_size=common.img_size(cfg),
        mean=norm.mean,
        std=norm.std,
        resize="stretch" if in_memory else "center_crop",
        crop_pct=1.0 if in_memory else 0.875,
    )


def parity(model: torch.nn.Module, onnx_path, images: np.ndarray) -> dict:
    """max |logit difference| and top-1 agreement between PyTorch and ONNX Runtime (CPU, FP32)."""
    with torch.inference_mode():
        ref = model.eval()(torch.from_numpy(images)).float().numpy()
    got = OrtRunner(onnx_path)(images)
    return {
        "images": int(images.shape[0]),
        "max_abs_diff": float(np.abs(ref - got).max()),
        "max_abs_logit": float(np.abs(ref).max()),
        "top1_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
    }


def _check(name: str, p: dict, cfg: RunConfig) -> None:
    e = cfg.export
    limit = e.parity_atol + e.parity_rtol * p["max_abs_logit"]
    p["tolerance"] = limit
    p["ok"] = p["max_abs_diff"] <= limit and p["top1_agreement"] >= e.parity_min_agreement
    if not p["ok"]:
        raise StageFailed(
            f"{name} ONNX disagrees with PyTorch: max |Δlogit| {p['max_abs_diff']:.3g} (limit {limit:.3g}), "
            f"top-1 agreement {100 * p['top1_agreement']:.1f}% (min {100 * e.parity_min_agreement:.0f}%)",
            "try --exporter " + ("torchscript" if e.exporter == "dynamo" else "dynamo") + " or another --opset",
        )


def run(cfg: RunConfig, ctx: StageContext) -> StageResult:
    ds = common.dataset(cfg)
    size = common.img_size(cfg)
    x, _ = next(iter(common.batches(cfg, ds.val, train=False, batch_size=cfg.export.parity_images)))
    raw = to_float(x, size)
    report = {}
    outputs = []
    for name, weights, onnx_rel in (
        ("student", common.STUDENT_WEIGHTS, common.STUDENT_ONNX),
        ("teacher", common.TEACHER_WEIGHTS, common.TEACHER_ONNX),
    ):
        model, recipe = load_model(common.require(ctx.run_dir, weights, "distill" if name == "student" else "teacher"))
        pre = preprocess_for(cfg, model)
        meta = {
            "lfcc.model": recipe.name,
            "lfcc.role": name,
            "lfcc.preprocess": pre.to_json(),
            "lfcc.labels": json.dumps(list(ds.classes)),
            "lfcc.params": str(count_params(model)),
        }
        export_onnx(model, ctx.path(onnx_rel), size, cfg.export.opset, cfg.export.exporter, meta)
        images = normalization(model)(raw).numpy().astype(np.float32)
        p = parity(model, ctx.path(onnx_rel), images)
        _check(name, p, cfg)
        report[name] = p
        outputs.append(onnx_rel)
        _logger.info(
            "export: %s.onnx max |Δlogit| %.2e, top-1 agreement %.1f%% on %d val images",
            name,
            p["max_abs_diff"],
            100 * p["top1_agreement"],
            p["images"],
        )
    report["exporter"], report["opset"] = cfg.export.exporter, cfg.export.opset
    write_json(ctx.path(common.PARITY), report)
    return StageResult(
        outputs=[*outputs, common.PARITY],
        metrics={k: report[k]["max_abs_diff"] for k in ("student", "teacher")},
        summary=f"export: student max |Δlogit| {report['student']['max_abs_diff']:.1e}",
    )


STAGE = Stage("export", ("teacher", "distill"), run, config_slice, help="export student and teacher to ONNX")
