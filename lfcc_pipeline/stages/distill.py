"""Stage `distill`: train the student with the chosen method; resumable from its last checkpoint."""

from __future__ import annotations

import logging

from lfcc_pipeline.core.config import RunConfig, as_dict
from lfcc_pipeline.methods import get_method
from lfcc_pipeline.models.factory import create_model, normalization
from lfcc_pipeline.models.weights import load_model
from lfcc_pipeline.pipeline.stage import Stage, StageContext, StageResult
from lfcc_pipeline.stages import common

_logger = logging.getLogger(__name__)


def config_slice(cfg: RunConfig) -> dict:
    method = get_method(cfg.distill.method)
    return {
        "student": cfg.models.student,
        "method": method.name,
        "method_options": {k: as_dict(getattr(cfg.distill, k)) for k in method.options},
        "img_size": common.img_size(cfg),
        "data": common.dataset(cfg).fingerprint,
        "data_split": common.data_split(cfg),
        "epochs": cfg.train.epochs,
        "batch_size": cfg.train.batch_size,
        "precision": cfg.train.precision,
        "optim": as_dict(cfg.train.optim),
        "seed": cfg.seed,
    }


def run(cfg: RunConfig, ctx: StageContext) -> StageResult:
    ds = common.dataset(cfg)
    size = common.img_size(cfg)
    method = get_method(cfg.distill.method)
    teacher = None
    norm_teacher = None
    if method.needs_teacher:
        teacher, _ = load_model(common.require(ctx.run_dir, common.TEACHER_WEIGHTS, "teacher"))
        norm_teacher = normalization(teacher)
    common.seed_everything(cfg.seed)
    student, recipe = create_model(cfg.models.student, ds.num_classes, size)
    norm_student = normalization(student)
    distiller = method(student, teacher, cfg.distill, cfg.train.optim.label_smoothing)
    metrics = common.fit_evaluate_save(
        cfg, ctx, distiller, recipe, (norm_student, norm_teacher), cfg.train.epochs, cfg.train.optim.lr,
        "student", f"distill[{method.name}]", {"student": cfg.models.student, "method": method.name},
    )  # fmt: skip
    if not metrics:
        return StageResult(outputs=[])
    return StageResult(
        outputs=[common.STUDENT_WEIGHTS, common.STUDENT_METRICS],
        metrics={k: metrics[k] for k in ("method", "val_top1", "test_top1")},
        summary=f"student {cfg.models.student} ({method.name}): test top-1 {metrics['test_top1']:.2f}%",
    )


STAGE = Stage("distill", ("teacher",), run, config_slice, help="distill the teacher into the student", distributed=True)
