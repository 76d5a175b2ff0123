"""Helpers the stages share: the dataset, the image size, batches, model artifacts."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.core.distributed import DistInfo, current
from lfcc_pipeline.core.errors import ArtifactError, ConfigError
from lfcc_pipeline.data.loader import Batches
from lfcc_pipeline.data.sources import Dataset, Split, load_dataset, stratified_holdout
from lfcc_pipeline.data.specs import parse_data_spec
from lfcc_pipeline.models.factory import default_img_size

_logger = logging.getLogger(__name__)

TEACHER_WEIGHTS = "teacher/model.safetensors"
TEACHER_METRICS = "teacher/metrics.json"
TEACHER_CKPT = "teacher/checkpoints/last.pt"
STUDENT_WEIGHTS = "student/model.safetensors"
STUDENT_METRICS = "student/metrics.json"
STUDENT_CKPT = "student/checkpoints/last.pt"
STUDENT_ONNX = "export/student.onnx"
TEACHER_ONNX = "export/teacher.onnx"
PARITY = "export/parity.json"


def dataset(cfg: RunConfig) -> Dataset:
    ds = load_dataset(parse_data_spec(cfg.data.spec), cfg.data.val_fraction, cfg.seed)
    n = cfg.data.train_subset
    if n is not None and n < len(ds.train):
        if n < ds.num_classes:
            raise ConfigError(f"--train-subset {n} is smaller than the {ds.num_classes} classes", "use a larger subset")
        _, keep = stratified_holdout(ds.train.labels.numpy(), n / len(ds.train), seed=0)
        ds = dataclasses.replace(ds, train=ds.train.subset(keep))
    return ds


def data_split(cfg: RunConfig) -> list:
    """What decides which images train and validate (for fingerprints)."""
    return [cfg.data.val_fraction, cfg.seed, cfg.data.train_subset]


def img_size(cfg: RunConfig) -> int:
    return cfg.models.img_size or default_img_size(cfg.models.teacher)


def batches(cfg: RunConfig, split: Split, train: bool, batch_size: int | None = None, shard: bool = False) -> Batches:
    """Batches of `split`; `shard`: this rank's share under torchrun (training always shards)."""
    bs = batch_size or cfg.train.batch_size
    info = current() if (train or shard) else DistInfo()
    return Batches(split, bs, train=train, img_size=img_size(cfg), seed=cfg.seed, workers=cfg.data.workers,
                   rank=info.rank, world=info.world)  # fmt: skip


def require(run_dir: Path, rel: str, stage: str) -> Path:
    path = run_dir / rel
    if not path.is_file():
        raise ArtifactError(f"{path} is missing", f"run the {stage} stage first (or the whole pipeline with `run`)")
    return path


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


def fit_evaluate_save(
    cfg: RunConfig,
    ctx,
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
    ranks other than 0 under torchrun, which train but write nothing)."""
    from lfcc_pipeline.core.atomic import write_json
    from lfcc_pipeline.models.factory import count_params
    from lfcc_pipeline.models.weights import save_model
    from lfcc_pipeline.training.evaluate import predict_logits, topk_accuracy
    from lfcc_pipeline.training.loop import FitSpec, fit, remove_checkpoint

    ds = dataset(cfg)
    size = img_size(cfg)
    norm_student, norm_teacher = norms
    ckpt = ctx.path(f"{role}/checkpoints/last.pt")
    if ctx.force:
        remove_checkpoint(ckpt)
    history = []
    if epochs > 0:
        t = cfg.train
        spec = FitSpec(epochs, lr, t.optim, t.precision, t.ckpt_every, cfg.seed, ckpt, ctx.fingerprint, desc=desc,
                       channels_last=t.channels_last, compile=t.compile)  # fmt: skip
        train, val = batches(cfg, ds.train, train=True), batches(cfg, ds.val, train=False, shard=True)
        history = fit(distiller, train, val, size, norm_student, norm_teacher, ctx.device, spec).history
    model = distiller.student
    if not current().is_main:  # under torchrun rank 0 evaluates and writes; the others are done
        return {}
    metrics = {**extra, "epochs": epochs, "params_m": count_params(model) / 1e6, "history": history}
    for split_name, split in (("val", ds.val), ("test", ds.test)):
        logits, labels = predict_logits(model, batches(cfg, split, train=False), size, norm_student, ctx.device)
        metrics[f"{split_name}_top1"] = topk_accuracy(logits, labels, 1)
        metrics[f"{split_name}_top5"] = topk_accuracy(logits, labels, 5)
    save_model(model, recipe, ctx.path(f"{role}/model.safetensors"))
    write_json(ctx.path(f"{role}/metrics.json"), metrics)
    return metrics
