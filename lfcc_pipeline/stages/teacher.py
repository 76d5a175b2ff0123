"""Stage `teacher`: load (timm pretrained or --teacher-weights), fine-tune or train, evaluate."""

from __future__ import annotations

import logging

from lfcc_pipeline.core.atomic import sha256_file
from lfcc_pipeline.core.config import RunConfig, as_dict
from lfcc_pipeline.core.errors import ConfigError, ModelError
from lfcc_pipeline.methods.none import NoDistillation
from lfcc_pipeline.models.factory import create_model, normalization, try_pretrained
from lfcc_pipeline.models.weights import apply_state_dict, read_state_dict
from lfcc_pipeline.pipeline.stage import Stage, StageContext, StageResult
from lfcc_pipeline.stages import common

_logger = logging.getLogger(__name__)


def config_slice(cfg: RunConfig) -> dict:
    m = cfg.models
    return {
        "teacher": m.teacher,
        "weights": sha256_file(m.teacher_weights) if m.teacher_weights and m.teacher_weights.is_file() else None,
        "pretrained": m.pretrained,
        "img_size": common.img_size(cfg),
        "data": common.dataset(cfg).fingerprint,
        "data_split": common.data_split(cfg),
        "epochs": cfg.train.teacher_epochs,
        "batch_size": cfg.train.batch_size,
        "precision": cfg.train.precision,
        "optim": as_dict(cfg.train.optim),
        "seed": cfg.seed,
    }


def _load_teacher(cfg: RunConfig, num_classes: int, size: int):
    """(model, recipe, source) where source says where the weights came from."""
    m = cfg.models
    if m.teacher_weights is not None:
        model, recipe = create_model(m.teacher, num_classes, size)
        apply_state_dict(model, read_state_dict(m.teacher_weights), f"--teacher-weights {m.teacher_weights}")
        return model, recipe, f"weights:{m.teacher_weights}"
    if m.pretrained is not False:
        got = try_pretrained(m.teacher, num_classes, size)
        if got is not None:
            return got[0], got[1], "timm-pretrained"
        if m.pretrained is True:
            raise ModelError(
                f"pretrained weights for {m.teacher} cannot be loaded (hub unreachable or none exist)",
                "pass --teacher-weights PATH, or --no-pretrained to train from scratch",
            )
    model, recipe = create_model(m.teacher, num_classes, size)
    return model, recipe, "scratch"


def run(cfg: RunConfig, ctx: StageContext) -> StageResult:
    ds = common.dataset(cfg)
    size = common.img_size(cfg)
    common.seed_everything(cfg.seed)
    model, recipe, source = _load_teacher(cfg, ds.num_classes, size)
    epochs = cfg.train.teacher_epochs
    if source == "scratch":
        if epochs == 0:
            raise ConfigError(
                f"the teacher {cfg.models.teacher} has no weights (offline, no --teacher-weights) and --teacher-epochs is 0",
                "pass --teacher-weights PATH or --teacher-epochs N > 0",
            )
        why = (
            "--no-pretrained"
            if cfg.models.pretrained is False
            else "no pretrained weights reachable, no --teacher-weights"
        )
        _logger.info("teacher: %s; training %s from scratch for %d epoch(s)", why, cfg.models.teacher, epochs)
    else:
        _logger.info("teacher: %s weights from %s; fine-tuning for %d epoch(s)", cfg.models.teacher, source, epochs)
    lr = cfg.train.optim.teacher_lr or (cfg.train.optim.lr if source == "scratch" else cfg.train.optim.lr / 10)
    distiller = NoDistillation(model, None, cfg.distill, cfg.train.optim.label_smoothing)
    norms = (normalization(model), None)
    metrics = common.fit_evaluate_save(
        cfg, ctx, distiller, recipe, norms, epochs, lr, "teacher", "teacher", {"source": source}
    )
    if not metrics:
        return StageResult(outputs=[])
    return StageResult(
        outputs=[common.TEACHER_WEIGHTS, common.TEACHER_METRICS],
        metrics={k: metrics[k] for k in ("source", "val_top1", "test_top1")},
        summary=f"teacher {cfg.models.teacher} ({source}): test top-1 {metrics['test_top1']:.2f}%",
    )


STAGE = Stage("teacher", (), run, config_slice, help="fine-tune or train the teacher and evaluate it", distributed=True)
