"""The runner: decides which stages to run, records them in the manifest, skips what is done."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from lfcc_pipeline import __version__
from lfcc_pipeline.core import layout
from lfcc_pipeline.core.atomic import remove_stale_temporaries, write_text
from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.core.config_file import dump_config
from lfcc_pipeline.core.distributed import barrier, broadcast, current, init_from_env, shutdown
from lfcc_pipeline.core.errors import ArtifactError, ConfigError, LfccError
from lfcc_pipeline.core.lock import run_lock
from lfcc_pipeline.core.stage import StageContext
from lfcc_pipeline.pipeline.env import resolve_device
from lfcc_pipeline.pipeline.manifest import Manifest, fingerprint

_logger = logging.getLogger(__name__)


@dataclass
class StageReport:
    name: str
    action: str  # ran | skipped | not-needed
    seconds: float = 0.0
    summary: str = ""


@dataclass
class RunReport:
    run_dir: Path
    stages: list[StageReport] = field(default_factory=list)
    is_main: bool = True  # rank 0 (the process group is gone by the time the caller reads this)


def preflight(cfg: RunConfig, last: str | None = None) -> None:
    """Everything that can be checked before any training: the options, then each stage's own check
    (names, data, sizes, targets), in stage order.

    A stage marked check_unless_reached=False (build, bench: the targets must run here) is checked
    only when the run reaches it: `--stop-after calibrate` prepares TensorRT inputs on a machine
    without TensorRT."""
    from lfcc_pipeline.pipeline.registry import ORDER

    cfg.validate()
    resolve_device(cfg.device)
    names = [s.name for s in ORDER]
    reached = names[: names.index(last) + 1] if last in names else names
    for stage in ORDER:
        if stage.check_unless_reached or stage.name in reached:
            stage.check(cfg)


def run_pipeline(
    cfg: RunConfig, until: str | None = None, stop_after: str | None = None, force: bool = False, rebuild: bool = True
) -> RunReport:
    """Run stages in order up to `until` (a stage command) or `stop_after`; skip finished ones.

    Under torchrun (WORLD_SIZE > 1) every rank calls this: rank 0 holds the lock, decides what
    runs and writes the manifest and artifacts; training stages run on every rank, the others
    on rank 0 alone while the rest wait. `rebuild=False` (--no-rebuild): an artifact that changed
    since it was written is an error instead of a reason to rerun its stage.
    """
    from lfcc_pipeline.pipeline.registry import BY_NAME, ORDER

    last = until or stop_after
    if last is not None and last not in BY_NAME:
        raise ConfigError(f"unknown stage {last!r}", f"choose one of {', '.join(BY_NAME)}")
    preflight(cfg, last)
    info = init_from_env(use_cuda=resolve_device(cfg.device).type == "cuda")
    if not info.is_main:
        logging.getLogger("lfcc_pipeline").setLevel(logging.WARNING)
    device = resolve_device(cfg.device)
    run_dir = cfg.run_dir()
    report = RunReport(run_dir, is_main=info.is_main)
    try:
        with run_lock(run_dir) if info.is_main else contextlib.nullcontext():
            if info.is_main:
                remove_stale_temporaries(run_dir)
                write_text(run_dir / layout.CONFIG, dump_config(cfg, __version__, run_dir / layout.CONFIG))
            manifest = Manifest(run_dir, writable=info.is_main, rebuild=rebuild)
            for stage in ORDER:
                if not stage.needed(cfg) and stage.name != until:  # a stage command always runs its stage
                    report.stages.append(StageReport(stage.name, "not-needed"))
                else:
                    report.stages.append(_run_stage(stage, cfg, manifest, run_dir, device, force))
                if stage.name == last:
                    break
    except BaseException:
        shutdown(clean=False)
        raise
    shutdown()
    return report


def _decide(stage, cfg: RunConfig, manifest: Manifest, force: bool) -> tuple[str, dict[str, str]] | None:
    """(fingerprint, inputs) if the stage must run, None if it is up to date (rank 0 decides)."""
    inputs = {}
    for dep in stage.deps:
        entry = manifest.get(dep)
        if entry is not None and entry.get("status") == "done":
            inputs[dep] = manifest.outputs_digest(dep)
    fp = fingerprint(stage.config_slice(cfg), inputs)
    entry = manifest.get(stage.name)
    if not force and entry and entry.get("status") == "done" and entry.get("fingerprint") == fp:
        problem = manifest.check_outputs(stage.name)
        if problem is None:
            _logger.info("stage %s: up to date (fingerprint %s), skipped", stage.name, fp)
            return None
        if not manifest.rebuild:
            raise ArtifactError(f"stage {stage.name}: {problem}", "rerun without --no-rebuild to rebuild it")
        _logger.info("stage %s: %s; rerunning", stage.name, problem)
    elif entry and entry.get("status") == "done" and not force:
        _logger.info("stage %s: settings or inputs changed; rerunning", stage.name)
    return fp, inputs


def _run_stage(stage, cfg: RunConfig, manifest: Manifest, run_dir: Path, device, force: bool) -> StageReport:
    info = current()
    decision = broadcast(_decide(stage, cfg, manifest, force) if info.is_main else None)
    if decision is None:
        return StageReport(stage.name, "skipped")
    fp, inputs = decision
    _logger.info("stage %s: running", stage.name)
    manifest.start(stage.name, fp, inputs)
    t0 = time.perf_counter()
    ctx = StageContext(run_dir=run_dir, device=device, fingerprint=fp, force=force)
    result = None
    try:
        if stage.distributed or info.is_main:
            result = stage.run(cfg, ctx)
    except LfccError as e:
        manifest.fail(stage.name, e.line(), time.perf_counter() - t0)
        raise
    except KeyboardInterrupt:
        manifest.fail(stage.name, "interrupted", time.perf_counter() - t0)
        raise
    except Exception as e:
        manifest.fail(stage.name, f"{type(e).__name__}: {e}", time.perf_counter() - t0)
        raise
    barrier()  # under torchrun: nobody moves on before rank 0 has the stage's artifacts
    seconds = time.perf_counter() - t0
    if result is None or not info.is_main:
        return StageReport(stage.name, "ran", seconds)
    manifest.finish(stage.name, result.outputs, seconds, result.metrics)
    _logger.info("stage %s: done in %.1f s%s", stage.name, seconds, f" — {result.summary}" if result.summary else "")
    return StageReport(stage.name, "ran", seconds, result.summary)
