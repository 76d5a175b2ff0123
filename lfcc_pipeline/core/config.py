"""Typed configuration for a pipeline run. Each field states its own flag, help and check (core/options.py);
the CLI, presets, config files and validation derive from them."""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.core.options import Check, at_least, in_range, non_negative, option, positive, validate_fields
from lfcc_pipeline.core.targets import TARGETS, TRT_TARGETS  # the target table lives in core/targets.py

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step")
EXPORTERS = ("torchscript", "dynamo")
CALIB_METHODS = ("max", "entropy", "percentile")
CALIB_TOOLS = ("auto", "modelopt", "ort")
ORT_PROVIDERS = ("cpu", "cuda", "tensorrt")


def _img_size(flag: str, value: int) -> None:
    positive(flag, value)
    if value < 16:
        raise ConfigError(f"{flag} {value} is too small", "use at least 16")


def _workers(value: str) -> int | None:
    """`--workers N|auto` (auto: None, resolved by the data loader from the CPU count)."""
    if value.strip().lower() == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{value!r} is neither a number nor auto", "use e.g. --workers 8 or --workers auto") from None


def _opset(flag: str, value: int) -> None:
    if value < 13:
        raise ConfigError(f"{flag} {value} is too old", "use 13 or newer (17 is the default)")


def _existing_file(what: str) -> Check:
    def check(flag: str, value: Path) -> None:
        if not Path(value).is_file():
            raise ConfigError(f"{flag} {value} does not exist", what)

    return check


@dataclass(frozen=True)
class ModelsConfig:
    teacher: str = option("deit_s", help="Teacher: short name or any timm name.")
    student: str = option("resnet18", help="Student: short name or timm name.")
    img_size: int | None = option(None, help="Input size in pixels. [default: the teacher's]", check=_img_size)
    teacher_weights: Path | None = option(
        None, help="Teacher weights: .safetensors or a torch state_dict (loaded with weights_only=True)."
    )
    pretrained: bool | None = option(  # None: use timm pretrained weights where the hub is reachable
        None, negatable=True, help="Use timm pretrained teacher weights. [default: when the hub is reachable]"
    )
    student_weights: Path | None = option(
        None, help="Student start: .safetensors or a torch state_dict (weights_only=True); head re-initialised.",
        check=_existing_file("pass a .safetensors or .pt file, e.g. an earlier run's student/model.safetensors"),
    )  # fmt: skip
    student_pretrained: bool = option(
        False, is_flag=True, help="Start the student from timm's pretrained weights (where the hub is reachable)."
    )


@dataclass(frozen=True)
class DataConfig:
    spec: str = option(
        "cifar100", flag="--data",
        help="fashion-mini | fashion-mnist[:DIR] | cifar100[:DIR] | imagefolder:DIR | webdataset:DIR|TRAIN;VAL[;TEST]",
    )  # fmt: skip
    val_fraction: float = option(
        0.1, help="Share of the training split held out for validation.", check=in_range(0, 1, True, True)
    )
    workers: int | None = option(  # None: auto (data/workers.py), from the CPUs per process
        2, help="Data loader processes (image folders, shards): N or auto (the CPUs per process - 1).",
        parse=_workers, metavar="N|auto", check=non_negative,
    )  # fmt: skip
    train_subset: int | None = option(  # a stratified subset of the training split (same images for every seed)
        None, help="Train on a stratified subset of N images (the same for every --seed).", check=positive
    )
    skip_bad_images: bool = option(
        False, is_flag=True, help="Skip unreadable image files (counted and listed) instead of stopping."
    )


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = option("adamw", help=" | ".join(OPTIMIZERS), choices=OPTIMIZERS)
    lr: float = option(1e-3, help="Learning rate.", check=positive)
    teacher_lr: float | None = option(  # None: lr (from scratch) or lr / 10 (fine-tuning pretrained)
        None, help="Teacher lr. [default: lr, or lr/10 if pretrained]", check=positive
    )
    student_lr: float | None = option(  # None: lr, or lr / 10 for a student that starts from weights
        None, help="Student lr. [default: lr, or lr/10 with --student-weights/--student-pretrained]", check=positive
    )
    weight_decay: float = option(0.05, check=non_negative)
    momentum: float = 0.9
    warmup_epochs: float = option(1.0, check=non_negative)
    label_smoothing: float = option(0.0, check=in_range(0, 1, high_open=True))
    grad_clip: float | None = option(None, help="Clip the gradient norm to this value.", check=positive)
    schedule: str = option("cosine", help="cosine | step (lr decay).", choices=SCHEDULES)
    step_epochs: int = option(30, help="step schedule: decay period.", check=positive)  # lr x step_gamma every N
    step_gamma: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = option(20, help="Student (distillation) epochs.", check=non_negative)
    teacher_epochs: int = option(
        10, help="Teacher fine-tuning/training epochs (0: use the weights as they are).", check=non_negative
    )
    batch_size: int = option(64, help="Training batch size.", check=positive)
    precision: str = option(
        "auto",
        help=f"{' | '.join(PRECISIONS)} (auto: bf16/fp16 autocast on CUDA, bf16 on CPUs with native bf16, else fp32)",
        choices=PRECISIONS,
    )
    ckpt_every: int = option(  # steps between mid-epoch checkpoints (and one at every epoch end)
        200, help="Steps between mid-epoch checkpoints (one is also written every epoch).", check=positive
    )
    channels_last: bool | None = option(  # None: on CUDA
        None, negatable=True, help="channels-last memory format for training. [default: on CUDA]"
    )
    compile: bool = option(False, is_flag=True, dest="compile_", help="torch.compile the training step.")
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass(frozen=True)
class DistillConfig:
    """The method, the options every method shares, and each method's own options (methods/*.py):
    `methods` maps a method's name to its options dataclass; a method missing there uses its defaults."""

    method: str = option("lfcc", help="Method: {methods}.")
    ce_weight: float = option(1.0, help="Cross-entropy weight.", check=non_negative)
    kd_weight: float = option(1.0, help="Logit KD weight (kd, lfcc).", check=non_negative)
    kd_temperature: float = option(4.0, help="Logit KD temperature.", check=positive)
    methods: tuple[tuple[str, Any], ...] = field(default=(), metadata={"mapping": True})

    def options(self, name: str) -> Any | None:
        """Method `name`'s options, or None where they are not set (the method then uses its defaults)."""
        return dict(self.methods).get(name)

    def with_options(self, *opts: Any) -> DistillConfig:
        """This config with the given method options dataclasses (each names its method in METHOD)."""
        items = dict(self.methods)
        items.update((type(o).METHOD, o) for o in opts)
        return dataclasses.replace(self, methods=tuple(items.items()))


@dataclass(frozen=True)
class ExportConfig:
    opset: int = option(17, help="ONNX opset.", check=_opset)
    exporter: str = option("torchscript", help=" | ".join(EXPORTERS), choices=EXPORTERS)
    parity_atol: float = 1e-3
    parity_rtol: float = 1e-3
    parity_min_agreement: float = 0.99
    parity_images: int = 64


@dataclass(frozen=True)
class CalibConfig:
    """The calibrate stage: calibration set, INT8 Q/DQ and FP16 models, and the INT8 accuracy gate."""

    size: int = option(  # calibration images, class-stratified from the training split
        512, flag="--calib-size", help="Calibration images (per class evenly).", check=positive
    )
    method: str = option("entropy", flag="--calib-method", help=" | ".join(CALIB_METHODS), choices=CALIB_METHODS)
    percentile: float = option(
        99.99, flag="--calib-percentile", help="For --calib-method percentile.", check=in_range(50, 100, low_open=True)
    )
    batch_size: int = option(32, flag="--calib-batch", help="Calibration batch size.", check=positive)
    tool: str = option(  # auto: NVIDIA ModelOpt where installed
        "auto",
        flag="--calib-tool",
        choices=CALIB_TOOLS,
        help=f"{' | '.join(CALIB_TOOLS)}: who makes the TensorRT-flavour INT8 and the FP16 models "
        "(auto: NVIDIA ModelOpt where installed, else ONNX Runtime).",
    )
    teacher: bool = option(  # also calibrate the teacher, so the report compares both on the same targets
        True,
        flag="--calib-teacher",
        negatable=True,
        help="Also make INT8/FP16 teacher models, so the report compares both on every target.",
    )
    file: Path | None = option(
        None,
        flag="--calib-file",
        help="Use this calib.npz (from an earlier run) instead of drawing a new set.",
        check=_existing_file("pass a calib.npz written by `calibrate`"),
    )
    eval_images: int | None = option(  # None: all validation images
        1000, flag="--calib-eval-images", help="Validation images for calibrate's own INT8/FP16 accuracy check.",
        check=positive,
    )  # fmt: skip
    max_int8_drop: float = option(
        1.0,
        help="Top-1 points an INT8 student may lose against the FP32 student before a warning.",
        check=at_least(0, "the default is 1.0"),
    )
    strict: bool = option(False, is_flag=True, help="Fail instead of warning when --max-int8-drop is exceeded.")
    sensitivity: bool = option(
        False,
        negatable=True,
        help="Write calib/sensitivity.json/.png even when the INT8 drop is within --max-int8-drop.",
    )
    sensitivity_images: int = option(256, help="Validation images the layer sensitivity runs on.", check=positive)
    sensitivity_layers: int = option(
        16, help="Layers measured for sensitivity (the highest by a quantization-error proxy).", check=positive
    )
    mixed_max_layers: int = option(
        8,
        help="Most layers kept in higher precision to meet --max-int8-drop (0: the budget is only a gate).",
        check=non_negative,
    )


@dataclass(frozen=True)
class BenchConfig:
    targets: tuple[str, ...] = option(
        ("torch", "ort-fp32"),
        flag="--target",
        dest="targets",
        multiple=True,
        metavar="T",
        choices=TARGETS,
        show_default=False,
        help=f"Deployment target, repeatable: {', '.join(TARGETS)}. [default: torch, ort-fp32]",
    )
    warmup: int = option(10, flag="--bench-warmup", help="Untimed warm-up calls.", check=non_negative)
    iters: int = option(100, flag="--bench-iters", help="Timed calls (10 s at most).", check=positive)
    max_seconds: float = 10.0  # per latency measurement; stops early after at least `warmup` iters
    batch_size: int = option(32, flag="--bench-batch", help="Batch size for throughput.", check=positive)
    threads: int | None = option(None, help="CPU threads for torch/ONNX Runtime in bench.", check=positive)
    max_images: int | None = option(None, flag="--bench-max-images", help="Cap on test images for accuracy.",
                                    check=positive)  # fmt: skip
    ort_provider: str = option(
        "cpu", help="ONNX Runtime provider for ort-* targets: cpu | cuda | tensorrt.", choices=ORT_PROVIDERS
    )


@dataclass(frozen=True)
class BuildConfig:
    """TensorRT engine building (targets trt-*): the optimization profile of the dynamic batch axis."""

    min_batch: int = option(1, help="Smallest batch the engine takes.", check=positive)
    opt_batch: int = option(  # 1 = the latency an app sees per image
        1, help="Batch TensorRT tunes kernels for.", check=positive
    )
    max_batch: int | None = option(  # None: the larger of opt_batch and the throughput batch (--bench-batch)
        None, help="Largest batch the engine takes. [default: --bench-batch]", check=positive
    )
    workspace_mb: int | None = option(  # None: TensorRT's default (all device memory)
        None, flag="--workspace", metavar="MB", help="TensorRT workspace limit in MiB.", check=positive
    )
    dla_core: int | None = option(  # None: the GPU
        None,
        metavar="N",
        help="Build for this Jetson DLA core (GPU fallback, static batch). [default: the GPU]",
        check=non_negative,
    )
    strongly_typed: bool = option(  # TensorRT 11 is always strongly typed; 8.6 cannot be
        False,
        is_flag=True,
        help="TensorRT 10: build strongly typed (no precision flags; FP16 / FP16-outside-Q/DQ ONNX), as 11 does.",
    )
    timing_cache: Path | None = option(  # None in a run: engines/timing.cache
        None, help="TensorRT timing cache, read and updated by every build. [default in a run: engines/timing.cache]"
    )

    def resolved_max(self, bench_batch: int) -> int:
        return self.max_batch if self.max_batch is not None else max(self.opt_batch, bench_batch)


@dataclass(frozen=True)
class TrackingConfig:
    """Where training curves and results go besides the run directory's own files."""

    tensorboard: bool = option(True, negatable=True, help="TensorBoard event files under <run>/tb/.")
    log_every: int = option(20, help="Training steps between logged values.", check=positive)
    mlflow: str | None = option(  # None: off; "default": sqlite:///<runs>/mlruns.db
        None,
        metavar="[URI]",
        flag_value="default",
        help="Record the run in MLflow (the mlflow extra): bare for a SQLite store next to the runs, or a tracking URI.",
    )


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
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    out: Path | None = option(None, help="Run directory. [default: runs/<teacher>-<student>-<method>]")
    device: str = option("auto", help=" | ".join(DEVICES), choices=DEVICES)
    seed: int = option(0, help="Seed for splits, init and data order.")

    def run_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        safe = [s.replace("/", "_").replace(":", "_") for s in (self.models.teacher, self.models.student)]
        return Path("runs") / f"{safe[0]}-{safe[1]}-{self.distill.method}"

    def validate(self) -> RunConfig:
        """Check every option's value range and choices (from the fields' metadata), then the
        combinations that need no model or dataset; raise ConfigError."""
        if not self.bench.targets:
            raise ConfigError("no --target given", f"pass one or more of {', '.join(TARGETS)}")
        validate_fields(self)
        validate_calib(self.calib)
        validate_build(self.build, self.bench.batch_size if any(t in TRT_TARGETS for t in self.bench.targets) else 0)
        return self


def validate_build(b: BuildConfig, bench_batch: int = 0) -> None:
    """The batch profile must hold 1 <= min <= opt <= max, and max must cover the throughput batch."""
    validate_fields(b)
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
    if b.timing_cache is not None and Path(b.timing_cache).is_dir():
        raise ConfigError(f"--timing-cache {b.timing_cache} is a directory", "pass a file path, e.g. trt.cache")


def validate_calib(c: CalibConfig) -> None:
    validate_fields(c)
    if c.size < c.batch_size:
        raise ConfigError(
            f"--calib-size {c.size} is smaller than one calibration batch (--calib-batch {c.batch_size})",
            f"use --calib-size {c.batch_size} or more, or a smaller --calib-batch",
        )
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


def as_dict(obj: Any) -> Any:
    """A JSON-able view of a (nested) config dataclass: Paths as strings, tuples as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: {k: as_dict(v) for k, v in getattr(obj, f.name)}
            if f.metadata.get("mapping")
            else as_dict(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
        }
    if isinstance(obj, (list, tuple)):
        return [as_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
