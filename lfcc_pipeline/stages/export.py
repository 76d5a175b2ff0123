"""Stage `export`: student and teacher to ONNX, checked, with parity against PyTorch on real images."""

from __future__ import annotations

import json
import logging

import numpy as np
import torch

from lfcc_pipeline.core import layout
from lfcc_pipeline.core.atomic import write_json
from lfcc_pipeline.core.config import RunConfig, as_dict
from lfcc_pipeline.core.errors import StageFailed
from lfcc_pipeline.core.onnx_meta import PREPROCESS_KEY
from lfcc_pipeline.core.preprocess import Preprocess
from lfcc_pipeline.core.stage import Stage, StageContext, StageResult
from lfcc_pipeline.data.run_data import batches, dataset
from lfcc_pipeline.data.transforms import to_float
from lfcc_pipeline.models.factory import count_params, normalization, run_img_size
from lfcc_pipeline.models.onnx_export import export_onnx
from lfcc_pipeline.models.weights import load_model
from lfcc_pipeline.runtimes.ort_runner import OrtRunner
from lfcc_pipeline.runtimes.ov_install import openvino_version
from lfcc_pipeline.runtimes.ov_ir import convert_onnx

_logger = logging.getLogger(__name__)


def config_slice(cfg: RunConfig) -> dict:
    c = {"export": as_dict(cfg.export), "data": dataset(cfg).fingerprint, "seed": cfg.seed}
    if layout.ov_targets(cfg):  # the OpenVINO IR too (absent otherwise: other runs keep their fingerprints)
        c["openvino"] = openvino_version()
    return c


def preprocess_for(cfg: RunConfig, model: torch.nn.Module) -> Preprocess:
    """What an app must do to an image before this model sees it (matches our evaluation path)."""
    norm = normalization(model)
    in_memory = dataset(cfg).in_memory
    return Preprocess(
        img_size=run_img_size(cfg),
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
    ds = dataset(cfg)
    size = run_img_size(cfg)
    x, _ = next(iter(batches(cfg, ds.val, train=False, img_size=size, batch_size=cfg.export.parity_images)))
    raw = to_float(x, size)
    report = {}
    outputs = []
    for name in ("student", "teacher"):
        onnx_rel = layout.onnx(name)
        weights = layout.require(ctx.run_dir, layout.weights(name), "distill" if name == "student" else "teacher")
        model, recipe = load_model(weights)
        pre = preprocess_for(cfg, model)
        meta = {
            "lfcc.model": recipe.name,
            "lfcc.role": name,
            PREPROCESS_KEY: pre.to_json(),
            "lfcc.labels": json.dumps(list(ds.classes)),
            "lfcc.params": str(count_params(model)),
        }
        export_onnx(model, ctx.path(onnx_rel), size, cfg.export.opset, cfg.export.exporter, meta)
        images = normalization(model)(raw).numpy().astype(np.float32)
        p = parity(model, ctx.path(onnx_rel), images)
        _check(name, p, cfg)
        report[name] = p
        outputs.append(onnx_rel)
        if layout.ov_targets(cfg):
            xml = layout.ov_ir(name, "fp32")
            convert_onnx(ctx.path(onnx_rel), ctx.path(xml))
            outputs += [xml, layout.ov_bin(xml)]
        _logger.info(
            "export: %s.onnx max |Δlogit| %.2e, top-1 agreement %.1f%% on %d val images",
            name,
            p["max_abs_diff"],
            100 * p["top1_agreement"],
            p["images"],
        )
    report["exporter"], report["opset"] = cfg.export.exporter, cfg.export.opset
    write_json(ctx.path(layout.PARITY), report)
    return StageResult(
        outputs=[*outputs, layout.PARITY],
        metrics={k: report[k]["max_abs_diff"] for k in ("student", "teacher")},
        summary=f"export: student max |Δlogit| {report['student']['max_abs_diff']:.1e}",
    )


STAGE = Stage("export", ("teacher", "distill"), run, config_slice)
