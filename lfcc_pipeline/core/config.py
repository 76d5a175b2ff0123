"""Typed configuration for a pipeline run. click only maps flags onto these dataclasses."""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.core.targets import TARGETS, TRT_TARGETS  # the target table lives in core/targets.py

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step")
EXPORTERS = ("torchscript", "dynamo")
CALIB_METHODS = ("max", "entropy", "percentile")
CALIB_TOOLS = ("auto", "modelopt", "ort")


@dataclass(frozen=True)
class ModelsConfig:
    teacher: str = "deit_s"
    student: str = "resnet18"
    img_size: int | None = None  # None: the teacher's default input size
    teacher_weights: Path | None = None
    pretrained: bool | None = None  # None: use timm pretrained weights where the hub is reachable


@dataclass(frozen=True)
class DataConfig:
    spec: str = "cifar100"
    val_fraction: float = 0.1
    workers: int = 2
    train_subset: int | None = None  # a stratified subset of the training split (same images for every seed)


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adamw"
    lr: float = 1e-3
    teacher_lr: float | None = None  # None: lr (from scratch) or lr / 10 (fine-tuning pretrained)
    weight_decay: float = 0.05
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    schedule: str = "cosine"  # cosine | step
    step_epochs: int = 30  # step schedule: multiply the lr by step_gamma every step_epochs
    step_gamma: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    teacher_epochs: int = 10
    batch_size: int = 64
    precision: str = "auto"
    ckpt_every: int = 200  # steps between mid-epoch checkpoints (and one at every epoch end)
    channels_last: bool | None = None  # None: on CUDA
    compile: bool = False
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass(frozen=True)
class DistillConfig:
    """Method choice and every method's hyper-parameters; each method reads only its own."""

    method: str = "lfcc"
    ce_weight: float = 1.0
    kd_weight: float = 1.0
    kd_temperature: float = 4.0
    lfcc_weight: float = 2.0  # chosen on validation top-1 (benchmarks/compare_methods.py, README)
    lfcc_stages: tuple[tuple[int, int], ...] | None = None  # (teacher idx, student idx); None: auto
    lfcc_num_stages: int = 3
    lfcc_scales: tuple[int, ...] = (1, 2, 4)
    lfcc_dim: int = 128
    lfcc_temperature: float = 0.1
    ofa_weight: float = 1.0
    ofa_eps: float = 1.5
    ofa_temperature: float = 1.0
    ofa_stages: tuple[int, ...] | None = None
    cakd_pca_weight: float = 1.0  # partially cross attention projector: attention maps + value relations
    cakd_gl_weight: float = 1.0  # group-wise linear projector: MSE to the teacher's last feature map
    cakd_replace_prob: float = 0.5  # chance that an entry of the student's Q/K/V is replaced by the teacher's
    cakd_multiview: bool = False  # multi-view robust training (a second augmented view + a discriminator)
    cakd_adv_weight: float = 0.1  # gradient-reversal factor from the discriminator into the student
    cakd_taps: tuple[int, int] | None = None  # (teacher tap, student tap) the projectors align; None: the last
    tas_nce_weight: float = 1.0  # InfoNCE on pooled features, per pair (teacher-assistant-student)
    tas_dim: int = 128
    tas_temperature: float = 0.1
    tas_split: tuple[int, int] | None = None  # (teacher tap the assistant's teacher part starts after, student tap)


@dataclass(frozen=True)
class ExportConfig:
    opset: int = 17
    exporter: str = "torchscript"
    parity_atol: float = 1e-3
    parity_rtol: float = 1e-3
    parity_min_agreement: float = 0.99
    parity_images: int = 64


@dataclass(frozen=True)
class CalibConfig:
    """The calibrate stage: calibration set, INT8 Q/DQ and FP16 models, and the INT8 accuracy gate."""

    size: int = 512  # calibration images, class-stratified from the training split
    method: str = "entropy"  # max | entropy | percentile
    percentile: float = 99.99
    batch_size: int = 32
    tool: str = "auto"  # TensorRT-flavour INT8 and FP16: auto (NVIDIA ModelOpt where installed) | modelopt | ort
    teacher: bool = True  # also calibrate the teacher, so the report compares both on the same targets
    file: Path | None = None  # use this calib.npz instead of drawing one
    eval_images: int | None = 1000  # validation images for the stage's own accuracy check (None: all)
    max_int8_drop: float = 1.0  # top-1 points an INT8 student may lose against the FP32 student
    strict: bool = False  # fail (instead of warn) beyond max_int8_drop


@dataclass(frozen=True)
class BenchConfig:
    targets: tuple[str, ...] = ("torch", "ort-fp32")
    warmup: int = 10
    iters: int = 100
    max_seconds: float = 10.0  # per latency measurement; stops early after at least `warmup` iters
    batch_size: int = 32  # throughput batch
    threads: int | None = None  # None: the runtime's default
    max_images: int | None = None  # cap on test images for accuracy (None: the whole test split)
    ort_provider: str = "cpu"  # ONNX Runtime provider for ort-* targets: cpu | cuda | tensorrt


@dataclass(frozen=True)
class BuildConfig:
    """TensorRT engine building (targets trt-*): the optimization profile of the dynamic batch axis."""

    min_batch: int = 1
    opt_batch: int = 1  # TensorRT tunes kernels for this batch; 1 = the latency an app sees per image
    max_batch: int | None = None  # None: the larger of opt_batch and the throughput batch (--bench-batch)
    workspace_mb: int | None = None  # None: TensorRT's default (all device memory)
    timing_cache: Path | None = None  # None in a run: engines/timing.cache

    def resolved_max(self, bench_batch: int) -> int:
        return self.max_batch if self.max_batch is not None else max(self.opt_batch, bench_batch)


@dataclass(frozen=True)
class RunConfig:
    models: ModelsConfig = field(default_factory=ModelsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    calib: CalibConfig = field(default_factory=CalibConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    build: BuildConfig = field(default_factory=BuildConfig)
    out: Path | None = None
    device: str = "auto"
    seed: int = 0

    def run_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        safe = [s.replace("/", "_").replace(":", "_") for s in (self.models.teacher, self.models.student)]
        return Path("runs") / f"{safe[0]}-{safe[1]}-{self.distill.method}"

    def validate(self) -> RunConfig:
        """Check value ranges that do not need any model or dataset; raise ConfigError."""
        _positive("--epochs", self.train.epochs, allow_zero=True)
        _positive("--teacher-epochs", self.train.teacher_epochs, allow_zero=True)
        _positive("--batch-size", self.train.batch_size)
        _positive("--ckpt-every", self.train.ckpt_every)
        if self.models.img_size is not None:
            _positive("--img-size", self.models.img_size)
            if self.models.img_size < 16:
                raise ConfigError(f"--img-size {self.models.img_size} is too small", "use at least 16")
        _positive("--lr", self.train.optim.lr)
        if self.train.optim.teacher_lr is not None:
            _positive("--teacher-lr", self.train.optim.teacher_lr)
        if self.train.optim.weight_decay < 0:
            raise ConfigError("--weight-decay must be >= 0", f"got {self.train.optim.weight_decay}")
        if not 0 <= self.train.optim.label_smoothing < 1:
            raise ConfigError("--label-smoothing must be in [0, 1)", f"got {self.train.optim.label_smoothing}")
        if self.train.optim.grad_clip is not None:
            _positive("--grad-clip", self.train.optim.grad_clip)
        if self.train.optim.warmup_epochs < 0:
            raise ConfigError("--warmup-epochs must be >= 0", f"got {self.train.optim.warmup_epochs}")
        _choice("--optimizer", self.train.optim.optimizer, OPTIMIZERS)
        _choice("--schedule", self.train.optim.schedule, SCHEDULES)
        _positive("--step-epochs", self.train.optim.step_epochs)
        _positive("--step-gamma", self.train.optim.step_gamma)
        _choice("--precision", self.train.precision, PRECISIONS)
        _choice("--device", self.device, DEVICES)
        _choice("--exporter", self.export.exporter, EXPORTERS)
        if not 0 < self.data.val_fraction < 1:
            raise ConfigError("--val-fraction must be in (0, 1)", f"got {self.data.val_fraction}")
        if self.data.train_subset is not None:
            _positive("--train-subset", self.data.train_subset)
        if self.data.workers < 0:
            raise ConfigError("--workers must be >= 0", f"got {self.data.workers}")
        if self.export.opset < 13:
            raise ConfigError(f"--opset {self.export.opset} is too old", "use 13 or newer (17 is the default)")
        if not self.bench.targets:
            raise ConfigError("no --target given", f"pass one or more of {', '.join(TARGETS)}")
        for t in self.bench.targets:
            _choice("--target", t, TARGETS)
        _positive("--bench-iters", self.bench.iters)
        _positive("--bench-warmup", self.bench.warmup, allow_zero=True)
        if self.bench.max_images is not None:
            _positive("--bench-max-images", self.bench.max_images)
        _positive("--bench-batch", self.bench.batch_size)
        _choice("--ort-provider", self.bench.ort_provider, ("cpu", "cuda", "tensorrt"))
        if self.bench.threads is not None:
            _positive("--threads", self.bench.threads)
        d = self.distill
        for name in ("ce_weight", "kd_weight", "lfcc_weight", "ofa_weight", "cakd_pca_weight", "cakd_gl_weight",
                     "cakd_adv_weight", "tas_nce_weight"):  # fmt: skip
            if getattr(d, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0", f"got {getattr(d, name)}")
        for name in ("kd_temperature", "lfcc_temperature", "ofa_temperature", "tas_temperature"):
            _positive(f"--{name.replace('_', '-')}", getattr(d, name))
        _positive("--lfcc-dim", d.lfcc_dim)
        _positive("--lfcc-num-stages", d.lfcc_num_stages)
        if not d.lfcc_scales or any(s <= 0 for s in d.lfcc_scales):
            raise ConfigError("--lfcc-scales must be positive grid sizes", "e.g. --lfcc-scales 1,2,4")
        if d.ofa_eps < 1:
            raise ConfigError(f"--ofa-eps must be >= 1, got {d.ofa_eps}", "the OFA-KD papers use 1.0 to 1.6")
        if not 0 <= d.cakd_replace_prob < 1:
            raise ConfigError(f"--cakd-replace-prob must be in [0, 1), got {d.cakd_replace_prob}", "0.5 is the default")
        _positive("--tas-dim", d.tas_dim)
        validate_calib(self.calib)
        validate_build(self.build, self.bench.batch_size if any(t in TRT_TARGETS for t in self.bench.targets) else 0)
        return self


def validate_build(b: BuildConfig, bench_batch: int = 0) -> None:
    """The batch profile must hold 1 <= min <= opt <= max, and max must cover the throughput batch."""
    _positive("--min-batch", b.min_batch)
    _positive("--opt-batch", b.opt_batch)
    if b.max_batch is not None:
        _positive("--max-batch", b.max_batch)
    if bench_batch and b.min_batch != 1:
        raise ConfigError(
            f"--min-batch {b.min_batch}: bench measures the engines' latency at batch 1",
            "use --min-batch 1 in a run (build --onnx takes any profile)",
        )
    top = b.resolved_max(bench_batch)
    if not b.min_batch <= b.opt_batch <= top:
        raise ConfigError(
            f"the batch profile needs --min-batch <= --opt-batch <= --max-batch, got {b.min_batch} / {b.opt_batch} / {top}",
            "e.g. --min-batch 1 --opt-batch 8 --max-batch 32",
        )
    if top < bench_batch:
        raise ConfigError(
            f"--max-batch {top} is smaller than the throughput batch --bench-batch {bench_batch}",
            f"use --max-batch {bench_batch} or more, or a smaller --bench-batch",
        )
    if b.workspace_mb is not None:
        _positive("--workspace", b.workspace_mb)
    if b.timing_cache is not None and Path(b.timing_cache).is_dir():
        raise ConfigError(f"--timing-cache {b.timing_cache} is a directory", "pass a file path, e.g. trt.cache")


def validate_calib(c: CalibConfig) -> None:
    _positive("--calib-size", c.size)
    _positive("--calib-batch", c.batch_size)
    if c.size < c.batch_size:
        raise ConfigError(
            f"--calib-size {c.size} is smaller than one calibration batch (--calib-batch {c.batch_size})",
            f"use --calib-size {c.batch_size} or more, or a smaller --calib-batch",
        )
    _choice("--calib-method", c.method, CALIB_METHODS)
    _choice("--calib-tool", c.tool, CALIB_TOOLS)
    if not 50 < c.percentile <= 100:
        raise ConfigError(f"--calib-percentile must be in (50, 100], got {c.percentile}", "e.g. 99.99")
    if c.eval_images is not None:
        _positive("--calib-eval-images", c.eval_images)
    if c.max_int8_drop < 0:
        raise ConfigError(f"--max-int8-drop must be >= 0 top-1 points, got {c.max_int8_drop}", "the default is 1.0")
    if c.tool == "modelopt":
        if importlib.util.find_spec("modelopt") is None:
            raise ConfigError(
                "--calib-tool modelopt but nvidia-modelopt is not installed",
                "pip install 'lfcc-pipeline[modelopt]', or use --calib-tool ort",
            )
        if c.method == "percentile":
            raise ConfigError(
                "ModelOpt's INT8 calibration offers max and entropy, not percentile",
                "use --calib-method max or entropy, or --calib-tool ort",
            )
    if c.file is not None and not Path(c.file).is_file():
        raise ConfigError(f"--calib-file {c.file} does not exist", "pass a calib.npz written by `calibrate`")


def _positive(flag: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{flag} must be {need}, got {value}")


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {flag} {value!r}", f"choose one of {', '.join(choices)}")


def as_dict(obj: Any) -> Any:
    """A JSON-able view of a (nested) config dataclass: Paths as strings, tuples as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [as_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
