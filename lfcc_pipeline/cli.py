"""The `lfcc-pipeline` command line: click maps flags onto RunConfig; the library does the work."""

from __future__ import annotations

import dataclasses
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from lfcc_pipeline import __version__
from lfcc_pipeline.cli_commands import compare_cmd, doctor_cmd, models_cmd, predict_cmd
from lfcc_pipeline.cli_options import OptionsCommand, config_from_context, shared_options, table_of
from lfcc_pipeline.core.config import BenchConfig
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


def _execute(opts: dict[str, Any], until: str | None, stop_after: str | None) -> None:
    from lfcc_pipeline.pipeline.runner import run_pipeline

    setup_logging(opts["debug"])
    cfg = config_from_context(opts)
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
        click.echo(table_of(md))
    click.echo(f"run directory: {report.run_dir}", err=True)


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


@cli.command("run", cls=OptionsCommand)
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
    cli.command(name, cls=OptionsCommand)(shared_options(command))


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


@cli.command("build", cls=OptionsCommand)
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

    cfg = config_from_context(opts)
    targets = cfg.bench.targets
    if onnx is None:
        if calib is not None:
            raise ConfigError("--calib goes with --onnx", "in a run directory the calibrate stage makes the models")
        if not any(t in TRT_TARGETS for t in targets):
            raise ConfigError("build needs a TensorRT target", "add --target trt-fp16 (or trt-fp32, trt-int8)")
        _execute(opts, "build", None)
        return
    from lfcc_pipeline.runtimes.trt_build import BuildRequest, build_target, default_engine_path

    setup_logging(opts["debug"])
    if any(t not in TRT_TARGETS for t in targets):
        raise ConfigError(f"build --onnx needs --target {' | '.join(TRT_TARGETS)}", "e.g. --target trt-fp16")
    if cfg.out is not None and len(targets) > 1:
        raise ConfigError("--out names one engine file, and several --target were given", "build one target per call")
    cfg = dataclasses.replace(
        cfg, bench=BenchConfig()
    ).validate()  # no run here: --bench-batch does not bound the profile
    for target in targets:
        engine = cfg.out or default_engine_path(onnx, target)
        meta = build_target(BuildRequest.from_config(cfg, onnx, target, engine, calib, cfg.build.timing_cache))
        click.echo(f"{engine}: TensorRT {meta['tensorrt']} {meta['precision']} engine for {meta['gpu']}, "
                   f"batch {meta['profile']['min'][0]}..{meta['profile']['max'][0]}, "
                   f"built in {meta['build_seconds']:.1f} s")  # fmt: skip


@cli.command("bench", cls=OptionsCommand)
@shared_options
@click.option("--model", "models", multiple=True, type=click.Path(path_type=Path),
              help="Standalone mode: an .onnx file, OpenVINO IR .xml or TensorRT .engine to measure (repeatable).")  # fmt: skip
@click.option("--cuda-graph", is_flag=True, help="Replay TensorRT engines through CUDA graphs (fixed shapes).")
def bench_cmd(models: tuple[Path, ...], cuda_graph: bool, **opts: Any) -> None:
    """Measure accuracy, agreement, latency and throughput of teacher and student per target.

    In a run directory it runs the stages before `bench` first where their results are missing
    or stale. With --model it measures deployable files on this device instead (ONNX through
    ONNX Runtime with --ort-provider, OpenVINO IR .xml files on the CPU, TensorRT engines on the
    GPU) and writes the report to --out (default: bench-report/).

    \b
    Examples:
      lfcc-pipeline bench --teacher test_vit --student test_resnet --data fashion-mini \\
          --epochs 1 --teacher-epochs 1 --img-size 64 --out runs/demo
      lfcc-pipeline bench --model runs/demo/export/student.onnx --model runs/demo/export/teacher.onnx \\
          --data fashion-mini --out bench-report
      lfcc-pipeline bench --model student.trt-int8.engine --model teacher.trt-fp16.engine --data fashion-mini
      lfcc-pipeline bench --model runs/demo/export/student.ov.xml --model runs/demo/calib/student.int8.ov.xml \
          --data fashion-mini --threads 2
    """
    if not models:
        _execute(opts, "bench", None)
        return
    from lfcc_pipeline.benchmark.report import markdown_table
    from lfcc_pipeline.benchmark.standalone import bench_files

    setup_logging(opts["debug"])
    cfg = config_from_context(opts).validate()
    out = cfg.out or Path("bench-report")
    rows = bench_files(list(models), cfg.data.spec, out, cfg.bench, cfg.bench.ort_provider, cuda_graph)
    click.echo(markdown_table(rows))
    click.echo(f"report: {out}", err=True)


for _command in (compare_cmd, predict_cmd, models_cmd, doctor_cmd):
    cli.add_command(_command)


def main() -> None:
    cli.main(prog_name="lfcc-pipeline")


if __name__ == "__main__":
    main()
