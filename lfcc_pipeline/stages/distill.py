"""Stage `distill`: train the student with the chosen method; resumable from its last checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

from lfcc_pipeline.core import layout
from lfcc_pipeline.core.atomic import sha256_file
from lfcc_pipeline.core.config import RunConfig, as_dict
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.core.stage import Stage, StageContext, StageResult
from lfcc_pipeline.data.run_data import data_split, dataset
from lfcc_pipeline.methods import get_method
from lfcc_pipeline.models.factory import create_model, normalization, run_img_size
from lfcc_pipeline.models.registry import resolve
from lfcc_pipeline.models.weights import initial_model, load_model
from lfcc_pipeline.training.fit_and_save import fit_evaluate_save, seed_everything

_logger = logging.getLogger(__name__)
STUDENT_FLAGS = ("--student-weights", "drop --student-pretrained")


def config_slice(cfg: RunConfig) -> dict:
    method = get_method(cfg.distill.method)
    return {
        "student": cfg.models.student,
        "method": method.name,
        "method_options": method.fingerprint(cfg.distill),
        "img_size": run_img_size(cfg),
        "data": dataset(cfg).fingerprint,
        "data_split": data_split(cfg),
        "epochs": cfg.train.epochs,
        "batch_size": cfg.train.batch_size,
        "precision": cfg.train.precision,
        "optim": as_dict(cfg.train.optim),
        "seed": cfg.seed,
        **_start_slice(cfg),
    }


def _student_start(cfg: RunConfig) -> tuple[Path | None, bool, float | None]:
    """(--student-weights, --student-pretrained, --student-lr); read with getattr until they are config fields."""
    weights = cfg.models.student_weights
    return Path(weights) if weights else None, cfg.models.student_pretrained, cfg.train.optim.student_lr


def _start_slice(cfg: RunConfig) -> dict:
    """What the student starts from, in the fingerprint only when set (a run from random weights keeps
    the fingerprint it had before these options existed)."""
    weights, pretrained, lr = _student_start(cfg)
    out: dict = {}
    if weights is not None:
        out["student_weights"] = sha256_file(weights) if weights.is_file() else str(weights)
    if pretrained:
        out["student_pretrained"] = True
    if lr is not None:
        out["student_lr"] = lr
    return out


def _student(cfg: RunConfig, num_classes: int, size: int) -> tuple:
    """(student, recipe, source, lr): from --student-weights, timm's weights (--student-pretrained) or
    random; a student that starts from weights fine-tunes at lr / 10 unless --student-lr says otherwise."""
    weights, pretrained, student_lr = _student_start(cfg)
    student, recipe, source = initial_model(cfg.models.student, num_classes, size, weights, pretrained,
                                            flags=STUDENT_FLAGS)  # fmt: skip
    base = cfg.train.optim.lr
    lr = student_lr or (base if source == "scratch" else base / 10)
    if source != "scratch":
        _logger.info("distill: student %s starts from %s; lr %g", cfg.models.student, source, lr)
    return student, recipe, source, lr


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
    student, recipe, source, lr = _student(cfg, ds.num_classes, size)
    norm_student = normalization(student)
    distiller = method(student, teacher, cfg.distill, cfg.train.optim.label_smoothing)
    extra = {"student": cfg.models.student, "method": method.name, "student_source": source, "lr": lr}
    metrics = fit_evaluate_save(
        cfg, ctx, distiller, recipe, (norm_student, norm_teacher), cfg.train.epochs, lr,
        "student", f"distill[{method.name}]", extra,
    )  # fmt: skip
    if not metrics:
        return StageResult(outputs=[])
    return StageResult(
        outputs=[layout.weights("student"), layout.metrics("student")],
        metrics={
            k: metrics[k]
            for k in ("method", "student_source", "val_top1", "test_top1", "skipped_images")
            if k in metrics
        },
        summary=f"student {cfg.models.student} ({method.name}): test top-1 {metrics['test_top1']:.2f}%",
    )


def check(cfg: RunConfig) -> None:
    """The method and the student's name; both architectures and the method built once (the student with
    --student-weights or --student-pretrained applied), so that a bad --img-size, method option (e.g. a tap
    index out of range) or student start fails before any training."""
    method = get_method(cfg.distill.method)
    resolve(cfg.models.student)
    num_classes, size = dataset(cfg).num_classes, run_img_size(cfg)
    teacher, _ = create_model(cfg.models.teacher, num_classes, size)
    weights, pretrained, student_lr = _student_start(cfg)
    if weights is not None and not weights.is_file():
        raise ConfigError(f"--student-weights {weights} does not exist", "check the path")
    if student_lr is not None and not student_lr > 0:
        raise ConfigError(f"--student-lr {student_lr} must be > 0", "pass a positive learning rate, e.g. 1e-4")
    # with its weights applied (unreadable, unsafe or foreign weights fail here, not after the teacher),
    # and --student-pretrained loaded once (offline and not cached: one line now, not mid-run)
    student, _, _ = initial_model(cfg.models.student, num_classes, size, weights, pretrained,
                                  flags=STUDENT_FLAGS)  # fmt: skip
    method(student, teacher, cfg.distill)


STAGE = Stage("distill", ("teacher",), run, config_slice, distributed=True, check=check)
