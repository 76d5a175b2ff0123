"""Stage `teacher`: load (timm pretrained or --teacher-weights), fine-tune or train, evaluate."""

from __future__ import annotations

import logging
from pathlib import Path

from lfcc_pipeline.core import layout
from lfcc_pipeline.core.atomic import sha256_file
from lfcc_pipeline.core.config import RunConfig, as_dict
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.core.stage import Stage, StageContext, StageResult
from lfcc_pipeline.data.run_data import data_split, dataset
from lfcc_pipeline.methods.none import NoDistillation
from lfcc_pipeline.models.factory import create_model, normalization, run_img_size
from lfcc_pipeline.models.registry import resolve
from lfcc_pipeline.models.weights import apply_state_dict, initial_model, read_state_dict
from lfcc_pipeline.training.fit_and_save import fit_evaluate_save, seed_everything

_logger = logging.getLogger(__name__)


def config_slice(cfg: RunConfig) -> dict:
    m = cfg.models
    return {
        "teacher": m.teacher,
        "weights": sha256_file(m.teacher_weights) if m.teacher_weights and m.teacher_weights.is_file() else None,
        "pretrained": m.pretrained,
        "img_size": run_img_size(cfg),
        "data": dataset(cfg).fingerprint,
        "data_split": data_split(cfg),
        "epochs": cfg.train.teacher_epochs,
        "batch_size": cfg.train.batch_size,
        "precision": cfg.train.precision,
        "optim": as_dict(cfg.train.optim),
        "seed": cfg.seed,
    }


def run(cfg: RunConfig, ctx: StageContext) -> StageResult:
    ds = dataset(cfg)
    size = run_img_size(cfg)
    seed_everything(cfg.seed)
    m = cfg.models
    model, recipe, source = initial_model(m.teacher, ds.num_classes, size, m.teacher_weights, m.pretrained)
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
    metrics = fit_evaluate_save(
        cfg, ctx, distiller, recipe, norms, epochs, lr, "teacher", "teacher", {"source": source}
    )
    if not metrics:
        return StageResult(outputs=[])
    return StageResult(
        outputs=[layout.weights("teacher"), layout.metrics("teacher")],
        metrics={k: metrics[k] for k in ("source", "val_top1", "test_top1", "skipped_images") if k in metrics},
        summary=f"teacher {cfg.models.teacher} ({source}): test top-1 {metrics['test_top1']:.2f}%",
    )


def check(cfg: RunConfig) -> None:
    """The teacher's name and --teacher-weights, the data and --batch-size; the teacher built once at the
    run's image size (a bad --img-size fails here) with its weights applied (unreadable, unsafe or
    foreign weights fail here, not mid-run)."""
    resolve(cfg.models.teacher)
    if cfg.models.teacher_weights is not None and not Path(cfg.models.teacher_weights).is_file():
        raise ConfigError(f"--teacher-weights {cfg.models.teacher_weights} does not exist", "check the path")
    ds = dataset(cfg)
    if cfg.train.batch_size > len(ds.train):
        raise ConfigError(
            f"--batch-size {cfg.train.batch_size} exceeds the {len(ds.train)} training images", "lower --batch-size"
        )
    teacher, _ = create_model(cfg.models.teacher, ds.num_classes, run_img_size(cfg))
    if cfg.models.teacher_weights is not None:
        path = cfg.models.teacher_weights
        apply_state_dict(teacher, read_state_dict(path), f"--teacher-weights {path}")


STAGE = Stage("teacher", (), run, config_slice, distributed=True, check=check)
