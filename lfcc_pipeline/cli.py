"""The `lfcc-pipeline` command line: click maps flags onto RunConfig; the library does the work."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from lfcc_pipeline import __version__
from lfcc_pipeline.core.config import (
    CALIB_METHODS,
    CALIB_TOOLS,
    DEVICES,
    EXPORTERS,
    OPTIMIZERS,
    PRECISIONS,
    TARGETS,
    BenchConfig,
    BuildConfig,
    CalibConfig,
    DataConfig,
    DistillConfig,
    ExportConfig,
    ModelsConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
)
from lfcc_pipeline.core.errors import DISK_FULL, ConfigError, LfccError
from lfcc_pipeline.core.progress import setup_logging

STAGE_NAMES = ("teacher", "distill", "export", "calibrate", "build", "bench")


class Cli(click.Group):
    """A click group that turns every error into one line on stderr and an exit code."""

    def main(self, args: list[str] | None = None, prog_name: str | None = None, **kwargs: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv or os.environ.get("LFCC_DEBUG", "") not in ("", "0")
        try:
            rv = super().main(args=argv, prog_name=prog_name, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.ClickException as e:
            ctx_cmd = " ".join(a for a in argv[:1] if not a.startswith("-"))
            _fail(f"{' '.join(e.format_message().split())}; see `lfcc-pipeline {ctx_cmd} --help`".replace("  ", " "), 2)
        except click.Abort:
            _fail("aborted", 130)
        except LfccError as e:
            if debug:
                traceback.print_exc()
            _fail(e.line(), e.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; rerun the same command to resume where it stopped", 130)
        except Exception as e:
            if debug:
                traceback.print_exc()
            if isinstance(e, OSError) and e.errno in DISK_FULL:  # a tool's own write ran out of space
                where = f" {e.filename}" if e.filename else ""
                _fail(f"cannot write{where}: {e.strerror}; free some disk space (or raise the file-size limit) "
                      "and rerun: finished stages are kept", 2)  # fmt: skip
            msg = str(e).splitlines()[0][:200] if str(e) else ""
            _fail(f"internal error: {type(e).__name__}: {msg} (rerun with --debug for the traceback)", 3)
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(line: str, code: int) -> None:
    click.echo(f"error: {line}", err=True)
    sys.exit(code)


def _int_list(value: str | None) -> tuple[int, ...] | None:
    if value is None or value == "":
        return None
    try:
        return tuple(int(v) for v in value.replace(" ", "").split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None


def _pairs(value: str | None) -> tuple[tuple[int, int], ...] | None:
    if value is None or value == "":
        return None
    try:
        pairs = [p.split(":") for p in value.replace(" ", "").split(",")]
        return tuple((int(t), int(s)) for t, s in pairs)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of TEACHER:STUDENT tap indices like 3:1,7:2") from None


def _pair(value: str | None) -> tuple[int, int] | None:
    pairs = _pairs(value)
    if pairs is not None and len(pairs) != 1:
        raise click.BadParameter(f"{value!r} is not one TEACHER:STUDENT pair of tap indices like 2:3")
    return pairs[0] if pairs else None


def shared_options(fn):
    """Options shared by `run` and the stage commands (DESIGN.md section 4)."""
    opts = [
        click.option("--teacher", default="deit_s", show_default=True, help="Teacher: short name or any timm name."),
        click.option("--student", default="resnet18", show_default=True, help="Student: short name or timm name."),
        click.option("--method", default="lfcc", show_default=True, help="Method: lfcc, ofa, cakd, tas, kd, none."),
        click.option(
            "--target",
            "targets",
            multiple=True,
            metavar="T",
            help=f"Deployment target, repeatable: {', '.join(TARGETS)}. [default: torch, ort-fp32]",
        ),
        click.option(
            "--data",
            default="cifar100",
            show_default=True,
            help="fashion-mini | fashion-mnist[:DIR] | cifar100[:DIR] | imagefolder:DIR",
        ),
        click.option(
            "--out",
            type=click.Path(path_type=Path),
            default=None,
            help="Run directory. [default: runs/<teacher>-<student>-<method>]",
        ),
        click.option("--epochs", type=int, default=20, show_default=True, help="Student (distillation) epochs."),
        click.option(
            "--teacher-epochs",
            type=int,
            default=10,
            show_default=True,
            help="Teacher fine-tuning/training epochs (0: use the weights as they are).",
        ),
        click.option("--img-size", type=int, default=None, help="Input size in pixels. [default: the teacher's]"),
        click.option("--batch-size", type=int, default=64, show_default=True, help="Training batch size."),
        click.option("--device", default="auto", show_default=True, help=f"{' | '.join(DEVICES)}"),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for splits, init and data order."),
        click.option(
            "--teacher-weights",
            type=click.Path(path_type=Path),
            default=None,
            help="Teacher weights: .safetensors or a torch state_dict (loaded with weights_only=True).",
        ),
        click.option(
            "--pretrained/--no-pretrained",
            default=None,
            help="Use timm pretrained teacher weights. [default: when the hub is reachable]",
        ),
        click.option("--lr", type=float, default=1e-3, show_default=True, help="Learning rate."),
        click.option(
            "--teacher-lr", type=float, default=None, help="Teacher lr. [default: lr, or lr/10 if pretrained]"
        ),
        click.option("--optimizer", default="adamw", show_default=True, help=" | ".join(OPTIMIZERS)),
        click.option("--weight-decay", type=float, default=0.05, show_default=True),
        click.option("--warmup-epochs", type=float, default=1.0, show_default=True),
        click.option("--label-smoothing", type=float, default=0.0, show_default=True),
        click.option("--schedule", default="cosine", show_default=True, help="cosine | step (lr decay)."),
        click.option("--step-epochs", type=int, default=30, show_default=True, help="step schedule: decay period."),
        click.option("--preset", default=None, help="The papers' recipes: cifar100 | imagenet (explicit options win)."),
        click.option("--grad-clip", type=float, default=None, help="Clip the gradient norm to this value."),
        click.option(
            "--precision",
            default="auto",
            show_default=True,
            help=f"{' | '.join(PRECISIONS)} (auto: bf16/fp16 autocast on CUDA, fp32 on CPU)",
        ),
        click.option(
            "--channels-last/--no-channels-last",
            default=None,
            help="channels-last memory format for training. [default: on CUDA]",
        ),
        click.option("--compile", "compile_", is_flag=True, help="torch.compile the training step."),
        click.option(
            "--ckpt-every",
            type=int,
            default=200,
            show_default=True,
            help="Steps between mid-epoch checkpoints (one is also written every epoch).",
        ),
        click.option("--workers", type=int, default=2, show_default=True, help="Data loader workers (image folders)."),
        click.option(
            "--train-subset",
            type=int,
            default=None,
            help="Train on a stratified subset of N images (the same for every --seed).",
        ),
        click.option(
            "--val-fraction",
            type=float,
            default=0.1,
            show_default=True,
            help="Share of the training split held out for validation.",
        ),
        click.option("--ce-weight", type=float, default=1.0, show_default=True, help="Cross-entropy weight."),
        click.option("--kd-weight", type=float, default=1.0, show_default=True, help="Logit KD weight (kd, lfcc)."),
        click.option("--kd-temperature", type=float, default=4.0, show_default=True, help="Logit KD temperature."),
        click.option("--lfcc-weight", type=float, default=2.0, show_default=True, help="LFCC contrastive loss weight."),
        click.option(
            "--lfcc-stages",
            default=None,
            metavar="T:S,...",
            help="LFCC tap pairs (teacher:student feature_info indices). [default: auto]",
        ),
        click.option("--lfcc-num-stages", type=int, default=3, show_default=True, help="Auto-chosen LFCC stage pairs."),
        click.option("--lfcc-scales", default="1,2,4", show_default=True, help="Low-pass grid sizes (average pools)."),
        click.option("--lfcc-dim", type=int, default=128, show_default=True, help="LFCC embedding size."),
        click.option("--lfcc-temperature", type=float, default=0.1, show_default=True, help="InfoNCE temperature."),
        click.option("--ofa-weight", type=float, default=1.0, show_default=True, help="OFA branch loss weight."),
        click.option("--ofa-eps", type=float, default=1.5, show_default=True, help="OFA target-enhancement exponent."),
        click.option("--ofa-temperature", type=float, default=1.0, show_default=True, help="OFA temperature."),
        click.option(
            "--ofa-stages",
            default=None,
            metavar="I,...",
            help="Student taps with OFA branches (feature_info indices). [default: 4 spread over depth]",
        ),
        click.option(
            "--cakd-pca-weight",
            type=float,
            default=1.0,
            show_default=True,
            help="CAKD attention-projector loss weight.",
        ),
        click.option(
            "--cakd-gl-weight", type=float, default=1.0, show_default=True, help="CAKD group-wise linear loss weight."
        ),
        click.option(
            "--cakd-replace-prob",
            type=float,
            default=0.5,
            show_default=True,
            help="CAKD: chance that an entry of the student's Q/K/V is replaced by the teacher's.",
        ),
        click.option(
            "--cakd-multiview/--no-cakd-multiview",
            default=False,
            show_default=True,
            help="CAKD multi-view robust training (augmented views + discriminator; twice the compute).",
        ),
        click.option(
            "--cakd-adv-weight", type=float, default=0.1, show_default=True, help="CAKD adversarial gradient factor."
        ),
        click.option(
            "--cakd-taps",
            default=None,
            metavar="T:S",
            help="CAKD: the teacher and student taps the projectors align. [default: the last of each]",
        ),
        click.option("--tas-nce-weight", type=float, default=1.0, show_default=True, help="TAS InfoNCE weight."),
        click.option("--tas-dim", type=int, default=128, show_default=True, help="TAS embedding size."),
        click.option("--tas-temperature", type=float, default=0.1, show_default=True, help="TAS InfoNCE temperature."),
        click.option(
            "--tas-split",
            default=None,
            metavar="T:S",
            help="TAS assistant: teacher tap its teacher part starts after, student tap feeding the bridge. "
            "[default: the end of the third of four stages]",
        ),
        click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset."),
        click.option("--exporter", default="torchscript", show_default=True, help=" | ".join(EXPORTERS)),
        click.option("--bench-iters", type=int, default=100, show_default=True, help="Timed calls (10 s at most)."),
        click.option("--bench-warmup", type=int, default=10, show_default=True, help="Untimed warm-up calls."),
        click.option("--bench-batch", type=int, default=32, show_default=True, help="Batch size for throughput."),
        click.option("--bench-max-images", type=int, default=None, help="Cap on test images for accuracy."),
        click.option(
            "--ort-provider",
            default="cpu",
            show_default=True,
            help="ONNX Runtime provider for ort-* targets: cpu | cuda | tensorrt.",
        ),
        click.option("--threads", type=int, default=None, help="CPU threads for torch/ONNX Runtime in bench."),
        click.option(
            "--no-rebuild",
            is_flag=True,
            help="Fail instead of rerunning a stage whose artifact changed since it was written.",
        ),
        *calib_options(),
        *build_options(),
        click.option("--force", is_flag=True, help="Rerun every stage, ignoring finished ones and checkpoints."),
        click.option("--debug", is_flag=True, help="Show Python tracebacks."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def build_options() -> list:
    """Options of TensorRT engine building (the build stage and the standalone `build --onnx`)."""
    return [
        click.option("--min-batch", type=int, default=1, show_default=True, help="Smallest batch the engine takes."),
        click.option("--opt-batch", type=int, default=1, show_default=True, help="Batch TensorRT tunes kernels for."),
        click.option(
            "--max-batch", type=int, default=None, help="Largest batch the engine takes. [default: --bench-batch]"
        ),
        click.option("--workspace", type=int, default=None, metavar="MB", help="TensorRT workspace limit in MiB."),
        click.option(
            "--timing-cache",
            type=click.Path(path_type=Path),
            default=None,
            help="TensorRT timing cache, read and updated by every build. [default in a run: engines/timing.cache]",
        ),
    ]


def build_config_from_options(o: dict[str, Any]) -> BuildConfig:
    return BuildConfig(o["min_batch"], o["opt_batch"], o["max_batch"], o["workspace"], o["timing_cache"])


def calib_options() -> list:
    """Options of the calibrate stage (INT8 Q/DQ and FP16 models) and the INT8 accuracy gate."""
    return [
        click.option(
            "--calib-size", type=int, default=512, show_default=True, help="Calibration images (per class evenly)."
        ),
        click.option("--calib-method", default="entropy", show_default=True, help=" | ".join(CALIB_METHODS)),
        click.option(
            "--calib-percentile", type=float, default=99.99, show_default=True, help="For --calib-method percentile."
        ),
        click.option("--calib-batch", type=int, default=32, show_default=True, help="Calibration batch size."),
        click.option(
            "--calib-tool",
            default="auto",
            show_default=True,
            help=f"{' | '.join(CALIB_TOOLS)}: who makes the TensorRT-flavour INT8 and the FP16 models "
            "(auto: NVIDIA ModelOpt where installed, else ONNX Runtime).",
        ),
        click.option(
            "--calib-teacher/--no-calib-teacher",
            default=True,
            show_default=True,
            help="Also make INT8/FP16 teacher models, so the report compares both on every target.",
        ),
        click.option(
            "--calib-file",
            type=click.Path(path_type=Path),
            default=None,
            help="Use this calib.npz (from an earlier run) instead of drawing a new set.",
        ),
        click.option(
            "--calib-eval-images",
            type=int,
            default=1000,
            show_default=True,
            help="Validation images for calibrate's own INT8/FP16 accuracy check.",
        ),
        click.option(
            "--max-int8-drop",
            type=float,
            default=1.0,
            show_default=True,
            help="Top-1 points an INT8 student may lose against the FP32 student before a warning.",
        ),
        click.option("--strict", is_flag=True, help="Fail instead of warning when --max-int8-drop is exceeded."),
    ]


def calib_config_from_options(o: dict[str, Any]) -> CalibConfig:
    return CalibConfig(
        size=o["calib_size"],
        method=o["calib_method"],
        percentile=o["calib_percentile"],
        batch_size=o["calib_batch"],
        tool=o["calib_tool"],
        teacher=o["calib_teacher"],
        file=o["calib_file"],
        eval_images=o["calib_eval_images"],
        max_int8_drop=o["max_int8_drop"],
        strict=o["strict"],
    )


def config_from_options(o: dict[str, Any]) -> RunConfig:
    """Map the shared options onto RunConfig (validation happens in the library)."""
    return RunConfig(
        models=ModelsConfig(o["teacher"], o["student"], o["img_size"], o["teacher_weights"], o["pretrained"]),
        data=DataConfig(o["data"], o["val_fraction"], o["workers"], o["train_subset"]),
        train=TrainConfig(
            epochs=o["epochs"],
            teacher_epochs=o["teacher_epochs"],
            batch_size=o["batch_size"],
            precision=o["precision"],
            ckpt_every=o["ckpt_every"],
            channels_last=o["channels_last"],
            compile=o["compile_"],
            optim=OptimConfig(
                o["optimizer"],
                o["lr"],
                o["teacher_lr"],
                o["weight_decay"],
                0.9,
                o["warmup_epochs"],
                o["label_smoothing"],
                o["grad_clip"],
                o["schedule"],
                o["step_epochs"],
            ),
        ),
        distill=DistillConfig(
            method=o["method"],
            ce_weight=o["ce_weight"],
            kd_weight=o["kd_weight"],
            kd_temperature=o["kd_temperature"],
            lfcc_weight=o["lfcc_weight"],
            lfcc_stages=_pairs(o["lfcc_stages"]),
            lfcc_num_stages=o["lfcc_num_stages"],
            lfcc_scales=_int_list(o["lfcc_scales"]) or (),
            lfcc_dim=o["lfcc_dim"],
            lfcc_temperature=o["lfcc_temperature"],
            ofa_weight=o["ofa_weight"],
            ofa_eps=o["ofa_eps"],
            ofa_temperature=o["ofa_temperature"],
            ofa_stages=_int_list(o["ofa_stages"]),
            cakd_pca_weight=o["cakd_pca_weight"],
            cakd_gl_weight=o["cakd_gl_weight"],
            cakd_replace_prob=o["cakd_replace_prob"],
            cakd_multiview=o["cakd_multiview"],
            cakd_adv_weight=o["cakd_adv_weight"],
            cakd_taps=_pair(o["cakd_taps"]),
            tas_nce_weight=o["tas_nce_weight"],
            tas_dim=o["tas_dim"],
            tas_temperature=o["tas_temperature"],
            tas_split=_pair(o["tas_split"]),
        ),
        export=ExportConfig(opset=o["opset"], exporter=o["exporter"]),
        calib=calib_config_from_options(o),
        build=build_config_from_options(o),
        bench=BenchConfig(
            targets=tuple(o["targets"]) or ("torch", "ort-fp32"),
            warmup=o["bench_warmup"],
            iters=o["bench_iters"],
            batch_size=o["bench_batch"],
            threads=o["threads"],
            max_images=o["bench_max_images"],
            ort_provider=o["ort_provider"],
        ),
        out=o["out"],
        device=o["device"],
        seed=o["seed"],
    )


def _execute(opts: dict[str, Any], until: str | None, stop_after: str | None) -> None:
    from lfcc_pipeline.pipeline.runner import run_pipeline

    setup_logging(opts["debug"])
    cfg = config_from_options(opts)
    if opts["preset"]:
        from click.core import ParameterSource

        from lfcc_pipeline.presets import apply_preset

        ctx = click.get_current_context()
        explicit = frozenset(k for k in opts if ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT, None))
        cfg = apply_preset(cfg, opts["preset"], explicit)
    report = run_pipeline(cfg, until=until, stop_after=stop_after, force=opts["force"], rebuild=not opts["no_rebuild"])
    if not report.is_main:
        return
    ran = [s for s in report.stages if s.action == "ran"]
    skipped = [s.name for s in report.stages if s.action == "skipped"]
    if skipped:
        click.echo(f"skipped (up to date): {', '.join(skipped)}", err=True)
    for s in ran:
        if s.summary:
            click.echo(s.summary, err=True)
    md = report.run_dir / "bench" / "report.md"
    if any(s.name == "bench" for s in report.stages) and md.is_file():
        click.echo(_table_of(md))
    click.echo(f"run directory: {report.run_dir}", err=True)


def _table_of(md: Path) -> str:
    return "\n".join(line for line in md.read_text().splitlines() if line.startswith("|"))


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="lfcc-pipeline")
def cli() -> None:
    """Distill a heterogeneous teacher into a compact student with LFCC, export it to ONNX,
    build deployment models and benchmark student against teacher.

    \b
    Example (offline, CPU, a few minutes):
      lfcc-pipeline run --teacher test_vit --student test_resnet --data fashion-mini \\
          --target ort-fp32 --epochs 1 --teacher-epochs 1 --img-size 64 --out runs/demo
    """


@cli.command("run")
@shared_options
@click.option("--stop-after", type=click.Choice(STAGE_NAMES), default=None, help="Stop after this stage.")
def run_cmd(stop_after: str | None, **opts: Any) -> None:
    """Run the whole pipeline: teacher -> distill -> export -> calibrate -> build -> bench -> bundle.

    calibrate runs for int8/fp16 targets, build (TensorRT engines) for trt-* targets.

    Finished stages are skipped when their settings and inputs are unchanged; a changed option
    reruns its stage and everything after it. The report table is printed at the end.

    \b
    Examples:
      lfcc-pipeline run --teacher deit_s --student resnet18 --target trt-fp16
      lfcc-pipeline run --teacher test_vit --student test_resnet --data fashion-mini \\
          --target ort-fp32 --epochs 1 --teacher-epochs 1 --img-size 64 --out runs/demo
      lfcc-pipeline run ... --stop-after calibrate   # then build engines on the target device
    """
    _execute(opts, None, stop_after)


def _stage_command(name: str, summary: str) -> None:
    def command(**opts: Any) -> None:
        _execute(opts, name, None)

    command.__doc__ = f"""{summary}

    Runs the stages before `{name}` first where their results are missing or stale.

    \b
    Example:
      lfcc-pipeline {name} --teacher test_vit --student test_resnet --data fashion-mini \\
          --epochs 1 --teacher-epochs 1 --img-size 64 --out runs/demo
    """
    cli.command(name)(shared_options(command))


for _name, _summary in (
    ("teacher", "Fine-tune (pretrained) or train (from scratch) the teacher and evaluate it."),
    ("distill", "Distill the teacher into the student with --method; resumes after an interruption."),
    ("export", "Export student and teacher to ONNX and check parity with PyTorch on real images."),
    (
        "calibrate",
        "Draw the calibration set (calib/calib.npz); write INT8 Q/DQ models (TensorRT and ONNX Runtime CPU "
        "flavours) and FP16 models; check them and their accuracy against FP32.",
    ),
):
    _stage_command(_name, _summary)


@cli.command("build")
@shared_options
@click.option("--onnx", type=click.Path(path_type=Path), default=None,
              help="Standalone mode: build this ONNX file (FP32, FP16 or TensorRT Q/DQ) into an engine.")  # fmt: skip
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="With --onnx: a calib.npz to make the FP16 / INT8 Q/DQ ONNX from an FP32 one where needed.")  # fmt: skip
def build_cmd(onnx: Path | None, calib: Path | None, **opts: Any) -> None:
    """Build TensorRT engines (targets trt-fp32, trt-fp16, trt-int8).

    In a run directory it runs the stages before `build` first where missing or stale and writes
    engines/<model>.<target>.engine. With --onnx it builds one file on this machine and writes
    <model>.<target>.engine beside it (or --out PATH), with a .json describing the engine.
    Engines are tied to the GPU and the TensorRT version: build them where they will run.

    \b
    Examples:
      lfcc-pipeline build --onnx runs/demo/export/student.onnx --target trt-fp16 \\
          --min-batch 1 --opt-batch 8 --max-batch 32 --timing-cache trt.cache
      lfcc-pipeline build --onnx runs/demo/calib/student.int8.trt.onnx --target trt-int8
      lfcc-pipeline build --onnx runs/demo/export/student.onnx --target trt-int8 \\
          --calib runs/demo/calib/calib.npz
    """
    from lfcc_pipeline.core.targets import TRT_TARGETS

    if onnx is None:
        if calib is not None:
            raise ConfigError("--calib goes with --onnx", "in a run directory the calibrate stage makes the models")
        if not any(t in TRT_TARGETS for t in opts["targets"]):
            raise ConfigError("build needs a TensorRT target", "add --target trt-fp16 (or trt-fp32, trt-int8)")
        _execute(opts, "build", None)
        return
    from lfcc_pipeline.runtimes.trt_build import BuildRequest, build_target, default_engine_path

    setup_logging(opts["debug"])
    targets = opts["targets"]
    if not targets or any(t not in TRT_TARGETS for t in targets):
        raise ConfigError(f"build --onnx needs --target {' | '.join(TRT_TARGETS)}", "e.g. --target trt-fp16")
    if opts["out"] is not None and len(targets) > 1:
        raise ConfigError("--out names one engine file, and several --target were given", "build one target per call")
    cfg = config_from_options(
        {**opts, "targets": ()}
    ).validate()  # no run here: --bench-batch does not bound the profile
    for target in targets:
        engine = opts["out"] or default_engine_path(onnx, target)
        meta = build_target(BuildRequest.from_config(cfg, onnx, target, engine, calib, cfg.build.timing_cache))
        click.echo(f"{engine}: TensorRT {meta['tensorrt']} {meta['precision']} engine for {meta['gpu']}, "
                   f"batch {meta['profile']['min'][0]}..{meta['profile']['max'][0]}, "
                   f"built in {meta['build_seconds']:.1f} s")  # fmt: skip


@cli.command("bench")
@shared_options
@click.option("--model", "models", multiple=True, type=click.Path(path_type=Path),
              help="Standalone mode: an .onnx file or TensorRT .engine to measure (repeatable).")  # fmt: skip
@click.option("--cuda-graph", is_flag=True, help="Replay TensorRT engines through CUDA graphs (fixed shapes).")
def bench_cmd(models: tuple[Path, ...], cuda_graph: bool, **opts: Any) -> None:
    """Measure accuracy, agreement, latency and throughput of teacher and student per target.

    In a run directory it runs the stages before `bench` first where their results are missing
    or stale. With --model it measures deployable files on this device instead (ONNX through
    ONNX Runtime with --ort-provider, TensorRT engines on the GPU) and writes the report to
    --out (default: bench-report/).

    \b
    Examples:
      lfcc-pipeline bench --teacher test_vit --student test_resnet --data fashion-mini \\
          --epochs 1 --teacher-epochs 1 --img-size 64 --out runs/demo
      lfcc-pipeline bench --model runs/demo/export/student.onnx --model runs/demo/export/teacher.onnx \\
          --data fashion-mini --out bench-report
      lfcc-pipeline bench --model student.trt-int8.engine --model teacher.trt-fp16.engine --data fashion-mini
    """
    if not models:
        _execute(opts, "bench", None)
        return
    from lfcc_pipeline.benchmark.report import markdown_table
    from lfcc_pipeline.benchmark.standalone import bench_files

    setup_logging(opts["debug"])
    cfg = config_from_options(opts).validate()
    out = opts["out"] or Path("bench-report")
    rows = bench_files(list(models), opts["data"], out, cfg.bench, opts["ort_provider"], cuda_graph)
    click.echo(markdown_table(rows))
    click.echo(f"report: {out}", err=True)


@cli.command("predict")
@click.option("--bundle", "bundle_dir", required=True, type=click.Path(path_type=Path), help="A bundle/ directory.")
@click.option("--model", default="student.onnx", show_default=True, help="Which ONNX file of the bundle.")
@click.option("--top-k", type=int, default=3, show_default=True, help="How many labels per image.")
@click.option("--ort-provider", default="cpu", show_default=True, help="cpu | cuda | tensorrt")
@click.option("--debug", is_flag=True, help="Show Python tracebacks.")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
def predict_cmd(
    bundle_dir: Path, model: str, top_k: int, ort_provider: str, debug: bool, images: tuple[Path, ...]
) -> None:
    """Print the top-k labels for each image using only the bundle (ONNX Runtime, numpy, Pillow; no torch).

    \b
    Example:
      lfcc-pipeline predict --bundle runs/demo/bundle shoe.png shirt.jpg
    """
    from lfcc_pipeline.predict import BundleModel

    if top_k < 1:
        raise click.BadParameter("--top-k must be >= 1")
    for p in BundleModel(bundle_dir, model, ort_provider).predict(list(images), top_k):
        click.echo(f"{p.image}: " + ", ".join(f"{label} ({100 * prob:.1f}%)" for label, prob in p.top))


@cli.command("models")
@click.option("--debug", is_flag=True, help="Show Python tracebacks.")
def models_cmd(debug: bool) -> None:
    """List the short model names with their timm names, family and parameter count.

    Any timm model name is accepted as well (e.g. timm's tiny test_vit, test_resnet).

    \b
    Example:
      lfcc-pipeline models
    """
    import timm
    import torch

    from lfcc_pipeline.models.registry import SHORT_NAMES

    rows = [("short name", "timm name", "architecture", "family", "params (M, 1000 classes)")]
    for e in SHORT_NAMES.values():
        with torch.device("meta"):
            m = timm.create_model(e.timm_name, pretrained=False)
        rows.append((e.short, e.timm_name, e.arch, e.family, f"{sum(p.numel() for p in m.parameters()) / 1e6:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the probe as JSON.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks.")
def doctor_cmd(as_json: bool, debug: bool) -> None:
    """Print versions (python, torch, CUDA, timm, onnx, onnxruntime, TensorRT), devices, ONNX Runtime
    providers, and which targets can run on this machine.

    \b
    Example:
      lfcc-pipeline doctor
    """
    import json

    from lfcc_pipeline.runtimes.probe import probe
    from lfcc_pipeline.runtimes.targets import target_status

    env = probe()
    targets = target_status()
    if as_json:
        click.echo(json.dumps({"env": env, "targets": targets}, indent=2))
        return
    for k, v in env.items():
        click.echo(f"{k:18} {v if v not in (None, [], {}) else 'absent'}")
    click.echo("targets:")
    for t, reason in targets.items():
        click.echo(f"  {t:9} {'ok' if reason is None else 'no: ' + reason}")


def main() -> None:
    cli.main(prog_name="lfcc-pipeline")


if __name__ == "__main__":
    main()
