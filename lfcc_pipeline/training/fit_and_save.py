"""What the teacher and distill stages share: train (resumable), evaluate on val and test, save."""

from __future__ import annotations

import logging

import torch

from lfcc_pipeline.core import layout
from lfcc_pipeline.core.atomic import write_json
from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.core.distributed import current
from lfcc_pipeline.core.metrics import topk_accuracy
from lfcc_pipeline.core.stage import StageContext
from lfcc_pipeline.data.run_data import batches, dataset, skipped_images
from lfcc_pipeline.models.factory import count_params, run_img_size
from lfcc_pipeline.models.weights import save_model
from lfcc_pipeline.tracking.open import stage_tracker_opener
from lfcc_pipeline.tracking.tensorboard import log_every
from lfcc_pipeline.training.evaluate import predict_logits
from lfcc_pipeline.training.loop import FitSpec, fit, remove_checkpoint

_logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


def fit_evaluate_save(
    cfg: RunConfig,
    ctx: StageContext,
    distiller,
    recipe,
    norms: tuple,
    epochs: int,
    lr: float,
    role: str,
    desc: str,
    extra: dict,
) -> dict:
    """Train `distiller` (resuming from role/checkpoints/last.pt), evaluate its student on val and
    test, and write role/model.safetensors and role/metrics.json. Returns the metrics ({} on
    ranks other than 0 under torchrun, which train but write nothing). With --skip-bad-images the
    metrics count the unreadable files skipped (skipped_images, skipped_files: rank 0's share)."""
    ds = dataset(cfg)
    size = run_img_size(cfg)
    norm_student, norm_teacher = norms
    ckpt = ctx.path(layout.checkpoint(role))
    skipped = skipped_images(cfg, ds)
    if ctx.force:
        remove_checkpoint(ckpt)
    history, precision = [], None
    if epochs > 0:
        t = cfg.train
        tracked = stage_tracker_opener(cfg, ctx.run_dir, "teacher" if role == "teacher" else "distill")
        spec = FitSpec(epochs, lr, t.optim, t.precision, t.ckpt_every, cfg.seed, ckpt, ctx.fingerprint, desc=desc,
                       channels_last=t.channels_last, compile=t.compile, open_tracker=tracked,
                       log_every=log_every(cfg))  # fmt: skip
        train = batches(cfg, ds.train, train=True, img_size=size, skipped=skipped)
        val = batches(cfg, ds.val, train=False, img_size=size, shard=True, skipped=skipped)
        fitted = fit(distiller, train, val, size, norm_student, norm_teacher, ctx.device, spec)
        history, precision = fitted.history, fitted.precision
    model = distiller.student
    if not current().is_main:  # under torchrun rank 0 evaluates and writes; the others are done
        return {}
    metrics = {**extra, "epochs": epochs, "params_m": count_params(model) / 1e6, "history": history,
               "precision": precision}  # fmt: skip
    for split_name, split in (("val", ds.val), ("test", ds.test)):
        split_batches = batches(cfg, split, train=False, img_size=size, skipped=skipped)
        logits, labels = predict_logits(model, split_batches, size, norm_student, ctx.device)
        metrics[f"{split_name}_top1"] = topk_accuracy(logits, labels, 1)
        metrics[f"{split_name}_top5"] = topk_accuracy(logits, labels, 5)
    if skipped is not None:
        metrics.update(skipped.metrics())
        if len(skipped):
            _logger.warning("%s: %s", desc, skipped.line())
    save_model(model, recipe, ctx.path(layout.weights(role)))
    write_json(ctx.path(layout.metrics(role)), metrics)
    return metrics
