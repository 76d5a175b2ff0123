"""Stage `distill`: train the student with the chosen method; resumable from its last checkpoint."""

from __future__ import annotations

import logging

from lfcc_pipeline.core import layout
from lfcc_pipeline.core.config import RunConfig, as_dict
from lfcc_pipeline.core.stage import Stage, StageContext, StageResult
from lfcc_pipeline.data.run_data import data_split, dataset
from lfcc_pipeline.methods import get_method
from lfcc_pipeline.models.factory import create_model, normalization, run_img_size
from lfcc_pipeline.models.registry import resolve
from lfcc_pipeline.models.weights import load_model
from lfcc_pipeline.training.fit_and_save import fit_evaluate_save, seed_everything

_logger = logging.getLogger(__name__)


def config_slice(cfg: RunConfig) -> dict:
    method = get_method(cfg.distill.method)
    return {
        "student": cfg.models.student,
        "method": method.name,
        "method_options": {k: as_dict(getattr(cfg.distill, k)) for k in method.options},
        "img_size": run_img_size(cfg),
        "data": dataset(cfg).fingerprint,
        "data_split": data_split(cfg),
        "epochs": cfg.train.epochs,
        "batch_size": cfg.train.batch_size,
        "precision": cfg.train.precision,
        "optim": as_dict(cfg.train.optim),
        "seed": cfg.seed,
    }


def run(cfg: RunConfig, ctx: StageContext) -> StageResult:
    ds = dataset(cfg)
    size = run_img_size(cfg)
    method = get_method(cfg.distill.method)
    teacher = None
    norm_teacher = None
    if method.needs_teacher:
        teacher, _ = load_model(layout.require(ctx.run_dir, layout.weights("teacher"), "teacher"))
        norm_teacher = normalization(teacher)
    seed_everything(cfg.seed)
    student, recipe = create_model(cfg.models.student, ds.num_classes, size)
    norm_student = normalization(student)
    distiller = method(student, teacher, cfg.distill, cfg.train.optim.label_smoothing)
    metrics = fit_evaluate_save(
        cfg, ctx, distiller, recipe, (norm_student, norm_teacher), cfg.train.epochs, cfg.train.optim.lr,
        "student", f"distill[{method.name}]", {"student": cfg.models.student, "method": method.name},
    )  # fmt: skip
    if not metrics:
        return StageResult(outputs=[])
    return StageResult(
        outputs=[layout.weights("student"), layout.metrics("student")],
        metrics={k: metrics[k] for k in ("method", "val_top1", "test_top1", "skipped_images") if k in metrics},
        summary=f"student {cfg.models.student} ({method.name}): test top-1 {metrics['test_top1']:.2f}%",
    )


def check(cfg: RunConfig) -> None:
    """The method and the student's name; both architectures and the method built once (no weights),
    so that a bad --img-size or method option (e.g. a tap index out of range) fails before any training."""
    method = get_method(cfg.distill.method)
    resolve(cfg.models.student)
    num_classes, size = dataset(cfg).num_classes, run_img_size(cfg)
    teacher, _ = create_model(cfg.models.teacher, num_classes, size)
    student, _ = create_model(cfg.models.student, num_classes, size)
    method(student, teacher, cfg.distill)


STAGE = Stage("distill", ("teacher",), run, config_slice, distributed=True, check=check)
