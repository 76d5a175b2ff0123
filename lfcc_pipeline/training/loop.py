"""The training loop: optimizer, warm-up + cosine schedule, autocast, checkpoints, exact resume.

Resuming reproduces an uninterrupted run on CPU: the data order is seeded by (seed, epoch), the
augmentation by (seed, epoch, step), and the checkpoint carries model, optimizer, scaler, step
and the global RNG state. Losses stay on the device between log intervals (no per-step sync).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from lfcc_pipeline.core.atomic import write_bytes
from lfcc_pipeline.core.config import OptimConfig
from lfcc_pipeline.core.distributed import all_reduce, current
from lfcc_pipeline.core.errors import ArtifactError, StageFailed
from lfcc_pipeline.core.progress import progress
from lfcc_pipeline.data.loader import Batches
from lfcc_pipeline.data.transforms import Normalization, augment, batch_generator, to_float
from lfcc_pipeline.methods.base import Distiller
from lfcc_pipeline.tracking.base import LOG_EVERY, Tracker
from lfcc_pipeline.training.evaluate import predict_logits
from lfcc_pipeline.training.interval import Interval
from lfcc_pipeline.training.precision import NAMES, choose_precision

_logger = logging.getLogger(__name__)


@dataclass
class FitSpec:
    epochs: int
    lr: float
    optim: OptimConfig
    precision: str
    ckpt_every: int
    seed: int
    ckpt_path: Path
    fingerprint: str  # a checkpoint written under another fingerprint is not resumed
    desc: str = "train"
    channels_last: bool | None = None  # None: on CUDA
    compile: bool = False
    # opens the run's tracker given the purge step (TensorBoard: the first step this fit writes); None: off
    open_tracker: Callable[[int], Tracker] | None = None
    log_every: int = LOG_EVERY  # steps between logged losses (also the progress bar's refresh)


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    resumed_from_step: int | None = None
    seconds: float = 0.0
    precision: str = "fp32"  # what the autocast ran in: fp32 | bf16 | fp16


def build_optimizer(named: list[tuple[str, nn.Parameter]], cfg: OptimConfig, lr: float):
    """AdamW or SGD; no weight decay on biases and normalisation parameters (1-d tensors)."""
    decay = [p for n, p in named if p.ndim > 1]
    no_decay = [p for n, p in named if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=True, fused=True)
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def lr_factor(step: int, total: int, warmup: int, step_every: int = 0, gamma: float = 0.1) -> float:
    """Linear warm-up, then cosine decay to zero (step_every == 0) or a decay by `gamma` every
    `step_every` steps; a function of the global step only, so resuming needs no scheduler state."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if step_every > 0:
        return gamma ** (step // step_every)
    progress_ = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress_)))


def _save_checkpoint(path: Path, state: dict) -> None:
    buffer = io.BytesIO()  # serialise first, so a full disk surfaces as an OSError from our own write
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())


def _load_checkpoint(path: Path, fingerprint: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: start over rather than crash
        _logger.warning("ignoring unreadable checkpoint %s (%s); training from the start", path, type(e).__name__)
        return None
    if state.get("fingerprint") != fingerprint:
        _logger.info("checkpoint %s belongs to other settings; training from the start", path)
        return None
    return state


def _prepare_models(distiller: Distiller, device: torch.device, channels_last: bool) -> None:
    distiller.to(device)
    if channels_last:
        distiller.to(memory_format=torch.channels_last)


def fit(
    distiller: Distiller,
    train: Batches,
    val: Batches,
    img_size: int,
    norm_student: Normalization,
    norm_teacher: Normalization | None,
    device: torch.device,
    spec: FitSpec,
) -> FitResult:
    """Train `distiller` for spec.epochs, resuming from spec.ckpt_path when it matches.

    Under torchrun every rank calls this with its shard of `train`/`val`; the distiller is wrapped
    in DistributedDataParallel, rank 0 writes the checkpoints, and losses and validation counts
    are reduced across ranks.
    """
    t0 = time.perf_counter()
    run = _Run(distiller, train, val, img_size, (norm_student, norm_teacher), device, spec)
    start_epoch, start_batch = run.resume()
    run.open_tracker()
    model = run.wrapped()
    try:
        for epoch in range(start_epoch, spec.epochs):
            te = time.perf_counter()
            means = run.train_epoch(model, epoch, start_batch if epoch == start_epoch else 0)
            run.result.history.append(run.validate(epoch, means, te))
            _raise_if_weights_nonfinite(distiller, run.step, spec)
            run.checkpoint(epoch + 1, 0)
    finally:
        run.tracker.close()
    run.result.seconds = time.perf_counter() - t0
    return run.result


class _Run:
    """One fit's state: the distiller, its optimizer, schedule and scaler, the global step and the history."""

    def __init__(self, distiller: Distiller, train: Batches, val: Batches, img_size: int, norms: tuple,
                 device: torch.device, spec: FitSpec) -> None:  # fmt: skip
        self.distiller, self.train, self.val, self.img_size, self.device, self.spec = (
            distiller, train, val, img_size, device, spec
        )  # fmt: skip
        self.norm_student, self.norm_teacher = norms
        self.info = current()
        self.channels_last = spec.channels_last if spec.channels_last is not None else device.type == "cuda"
        _prepare_models(distiller, device, self.channels_last)
        if device.type == "cuda":  # in-memory data lives on the GPU; image files are decoded there
            for b in (train, val):
                b.cache_on(device)
                b.decode_on(device)
        named = [(n, p) for n, p in distiller.named_parameters() if p.requires_grad]
        self.optimizer = build_optimizer(named, spec.optim, spec.lr)
        self.steps_per_epoch = steps = len(train)
        total = spec.epochs * steps
        warmup = int(round(spec.optim.warmup_epochs * steps))
        step_every = spec.optim.step_epochs * steps if spec.optim.schedule == "step" else 0
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, total, warmup, step_every, spec.optim.step_gamma)
        )
        self.result = FitResult()
        self.amp_dtype, why = choose_precision(spec.precision, device)
        self.result.precision = NAMES[self.amp_dtype]
        _logger.info("%s: training in %s (%s)", spec.desc, self.result.precision, why)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.tracker = Tracker()
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)  # first step with a NaN/Inf loss

    def resume(self) -> tuple[int, int]:
        """(epoch, batch) to start from: where the checkpoint left off if it matches, else (0, 0)."""
        spec = self.spec
        state = _load_checkpoint(spec.ckpt_path, spec.fingerprint)
        if state is None:
            return 0, 0
        self.distiller.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        self.step = state["step"]
        self.result.history = list(state["history"])
        if self.train.skipped is not None:  # the unreadable files met before the interruption still count
            for path, why in state.get("skipped", []):
                self.train.skipped.add(Path(path), why)
        self.result.resumed_from_step = self.step
        _logger.info("%s: resuming from %s at epoch %d, step %d", spec.desc, spec.ckpt_path, state["epoch"] + 1,
                     self.step)  # fmt: skip
        return state["epoch"], state["batch"]

    def open_tracker(self) -> None:
        """Rank 0's tracker, once the step to resume from is known: a resumed run continues the curves from
        the step after its checkpoint (what an earlier process logged beyond it is purged and logged again);
        a run from the start replaces them all."""
        if self.spec.open_tracker is not None and self.info.is_main:
            self.tracker = self.spec.open_tracker(self.step + 1 if self.result.resumed_from_step is not None else 0)

    def checkpoint(self, epoch: int, batch: int) -> None:
        """Write the state to resume at (epoch, batch) from (rank 0 only), the tracker's events up to here first."""
        if not self.info.is_main:
            return
        self.tracker.flush()
        _save_checkpoint(
            self.spec.ckpt_path,
            {
                "fingerprint": self.spec.fingerprint,
                "step": self.step,
                "epoch": epoch,
                "batch": batch,
                "model": self.distiller.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.sched.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": torch.get_rng_state(),
                "history": self.result.history,
                "skipped": _skipped_files(self.train),
            },
        )

    def wrapped(self) -> nn.Module:
        """The distiller as the training steps call it: in DDP under torchrun, compiled with --compile."""
        model: nn.Module = self.distiller
        if self.info.world > 1:
            device = self.device
            model = nn.parallel.DistributedDataParallel(
                self.distiller, device_ids=[device.index] if device.type == "cuda" else None
            )
        if self.spec.compile:
            model = torch.compile(model)
        return model

    def _train_step(self, model: nn.Module, autocast, x: torch.Tensor, y: torch.Tensor) -> tuple:
        """One optimizer step on (x, y); returns (loss, the named losses), detached."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        nt = self.norm_teacher
        x_t = nt(x).contiguous(memory_format=memory_format) if nt is not None else None
        with autocast:
            _, losses = model(self.norm_student(x).contiguous(memory_format=memory_format), x_t, y)
            loss = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.spec.optim.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.distiller.trainable_parameters(), self.spec.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.sched.step()
        return loss.detach().float(), {k: v.detach().float() for k, v in losses.items()}

    def train_epoch(self, model: nn.Module, epoch: int, skip: int) -> tuple[torch.Tensor, list[str]]:
        """One epoch from batch `skip`, with mid-epoch checkpoints; returns the mean losses averaged over
        the ranks (the total first, then the named parts) and the parts' names."""
        spec, train, device, info = self.spec, self.train, self.device, self.info
        self.distiller.train()
        train.set_epoch(epoch)
        autocast = contextlib.nullcontext()
        if self.amp_dtype is not None:
            autocast = torch.autocast(device.type, dtype=self.amp_dtype)
        loss_sum = torch.zeros((), device=device)
        parts: dict[str, torch.Tensor] = {}
        seen = 0
        bar = progress(desc=f"{spec.desc} {epoch + 1}/{spec.epochs}", total=self.steps_per_epoch, initial=skip)
        interval = Interval(device)
        fetched = time.perf_counter()
        for b, (x, y) in enumerate(train.iterate(skip), start=skip):
            interval.waited(time.perf_counter() - fetched)
            if len(y) == 0:  # --skip-bad-images: no file of this batch decoded; it keeps its place
                bar.update(1)
                fetched = time.perf_counter()
                continue
            x = to_float(x.to(device, non_blocking=True), self.img_size)
            y = y.to(device, non_blocking=True)
            if train.device_augment:
                g = batch_generator(device, spec.seed, epoch, b)
                x = augment(x, g, offset=info.rank * train.index.local_batch, total=train.index.batch_size)
            self.distiller.set_progress(self.step / self.steps_per_epoch)
            loss, losses = self._train_step(model, autocast, x, y)
            self.first_bad = torch.where(~torch.isfinite(loss) & (self.first_bad < 0), self.step, self.first_bad)
            loss_sum += loss  # no host sync
            for k, v in losses.items():
                parts[k] = parts.get(k, 0) + v
            interval.add(loss, losses, len(y))
            seen += 1
            self.step += 1
            bar.update(1)
            last = b + 1 == self.steps_per_epoch
            if self.step % spec.log_every == 0 or last:
                self._log(interval, bar, loss_sum / seen)
            if self.step % spec.ckpt_every == 0 and not last:
                _raise_if_nonfinite(self.first_bad, spec)
                _raise_if_weights_nonfinite(self.distiller, self.step, spec)
                self.checkpoint(epoch, b + 1)
            fetched = time.perf_counter()
        bar.close()
        _raise_if_nonfinite(self.first_bad, spec)
        return all_reduce(torch.stack([loss_sum, *parts.values()]) / max(seen, 1)) / info.world, list(parts)

    def _log(self, interval: Interval, bar, epoch_mean: torch.Tensor) -> None:
        """At a logging step: stop on a NaN/Inf loss, refresh the bar, record the interval (rank 0) and start
        the next one."""
        _raise_if_nonfinite(self.first_bad, self.spec)
        lr = self.sched.get_last_lr()[0]
        bar.set_postfix(loss=f"{epoch_mean.item():.4f}", lr=f"{lr:.2e}")
        if self.info.is_main:
            self.tracker.scalars(interval.values(lr, self.info.world), self.step)
        interval.reset()

    def validate(self, epoch: int, means: tuple[torch.Tensor, list[str]], started: float) -> dict:
        """Validation top-1 after `epoch`, logged with the epoch's mean losses; the history record."""
        spec, device = self.spec, self.device
        sums, names = means
        logits, labels = predict_logits(self.distiller.student, self.val, self.img_size, self.norm_student, device,
                                        desc="val")  # fmt: skip
        # on the training device: NCCL reduces CUDA tensors only
        counts = [float((logits.argmax(1) == labels).sum()), float(len(labels))]
        correct = all_reduce(torch.tensor(counts, device=device))
        record = {
            "epoch": epoch + 1,
            "step": self.step,
            "train_loss": sums[0].item(),
            **{k: sums[i + 1].item() for i, k in enumerate(names)},
            "val_top1": 100.0 * (correct[0] / correct[1]).item(),
            "lr": self.sched.get_last_lr()[0],
            "seconds": time.perf_counter() - started,
        }
        _logger.info("%s epoch %d/%d: loss %.4f, val top-1 %.2f%% (%.1f s)", spec.desc, epoch + 1, spec.epochs,
                     record["train_loss"], record["val_top1"], record["seconds"])  # fmt: skip
        self.tracker.scalars({"val/top1": record["val_top1"], "train/epoch_loss": record["train_loss"],
                              "perf/epoch_seconds": record["seconds"]}, self.step)  # fmt: skip
        return record


def _skipped_files(batches: Batches) -> list[tuple[str, str]]:
    """The --skip-bad-images record so far, as plain strings (a weights_only checkpoint holds no Paths)."""
    return [(str(p), why) for p, why in batches.skipped.files.items()] if batches.skipped is not None else []


def _raise_if_nonfinite(first_bad: torch.Tensor, spec: FitSpec) -> None:
    bad = int(all_reduce(first_bad.clone(), op="max").item())
    if bad >= 0:
        raise _diverged(f"the loss became NaN/Inf at step {bad + 1}", spec)


def _raise_if_weights_nonfinite(distiller: nn.Module, step: int, spec: FitSpec) -> None:
    """Before a checkpoint: a finite loss can still come with an update that left NaN/Inf weights.
    Every rank checks (DDP keeps the weights identical), so all stop together."""
    flags = [torch.isfinite(p).all() for p in distiller.parameters() if p.is_floating_point()]
    if flags and not bool(torch.stack(flags).all()):
        raise _diverged(f"the weights became NaN/Inf by step {step}", spec)


def _diverged(what: str, spec: FitSpec) -> StageFailed:
    kept = f"the last good checkpoint {spec.ckpt_path} is kept" if spec.ckpt_path.exists() else "no checkpoint yet"
    return StageFailed(
        f"{spec.desc}: {what}; {kept}", f"lower the learning rate (now {spec.lr:g}) or pass --grad-clip 1.0, then rerun"
    )


def remove_checkpoint(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as e:
        raise ArtifactError(f"cannot remove {path}: {e.strerror}") from e
