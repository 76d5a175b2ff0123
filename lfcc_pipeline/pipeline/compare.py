"""`lfcc-pipeline compare`: distillation methods side by side on one teacher, one student, one budget.

The teacher is trained (or fine-tuned, or loaded) once through the pipeline, in <root>/teacher; then
every (method, seed) distills a fresh student from those weights through the pipeline's own
stages in <root>/<method>-seed<seed> (resumable; a finished run's stages are skipped). The
comparison goes to <root>/compare/report.{json,md,png}.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfcc_pipeline.benchmark.compare_report import write_compare_report
from lfcc_pipeline.core import layout
from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.pipeline.runner import run_pipeline

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComparePlan:
    base: RunConfig  # the shared options; its method and seed are replaced per run
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    root: Path
    teacher_train_subset: int | None = None  # the teacher's own training subset (None: the students')
    teacher_all_data: bool = False  # train the teacher on the whole training split
    teacher_root: Path | None = None  # where the teacher run lives (None: <root>/teacher); shared across plans

    @property
    def teacher_dir(self) -> Path:
        return self.root / "teacher" if self.teacher_root is None else self.teacher_root

    def teacher_config(self) -> RunConfig:
        data = self.base.data
        if self.teacher_all_data:
            data = dataclasses.replace(data, train_subset=None)
        elif self.teacher_train_subset is not None:
            data = dataclasses.replace(data, train_subset=self.teacher_train_subset)
        # The teacher's run does not depend on the methods' options, so plans that differ only there share it.
        distill = type(self.base.distill)(method="none", ce_weight=self.base.distill.ce_weight)
        return dataclasses.replace(self.base, out=self.teacher_dir, data=data, distill=distill, seed=0)

    def run_config(self, method: str, seed: int, teacher_weights: Path) -> RunConfig:
        return dataclasses.replace(
            self.base, out=self.root / f"{method}-seed{seed}", seed=seed,
            distill=dataclasses.replace(self.base.distill, method=method),
            models=dataclasses.replace(self.base.models, teacher_weights=teacher_weights),
            train=dataclasses.replace(self.base.train, teacher_epochs=0),
        )  # fmt: skip


def default_root(cfg: RunConfig) -> Path:
    safe = [s.replace("/", "_").replace(":", "_") for s in (cfg.models.teacher, cfg.models.student)]
    return Path("runs") / f"compare-{safe[0]}-{safe[1]}"


def check_plan(plan: ComparePlan, known: tuple[str, ...]) -> None:
    """Method names, seeds and every run's options, before the teacher starts training."""
    if not plan.methods:
        raise ConfigError("no --methods given", f"pass some of {', '.join(known)}, e.g. --methods none,lfcc")
    for m in plan.methods:
        if m not in known:
            raise ConfigError(f"unknown method {m!r} in --methods", f"choose from {', '.join(known)}")
    if len(set(plan.methods)) != len(plan.methods) or len(set(plan.seeds)) != len(plan.seeds):
        raise ConfigError("--methods and --seeds must not repeat a value", "e.g. --methods none,lfcc --seeds 0,1,2")
    if not plan.seeds:
        raise ConfigError("no --seeds given", "e.g. --seeds 0,1,2")
    plan.teacher_config().validate()
    for m in plan.methods:
        plan.run_config(m, plan.seeds[0], plan.teacher_dir / layout.weights("teacher")).validate()


def compare(plan: ComparePlan, force: bool = False) -> dict[str, Any]:
    """Train the teacher once, distill every (method, seed), write the report; return the report's dict."""
    teacher = run_pipeline(plan.teacher_config(), stop_after="teacher", force=force)
    teacher_dir = plan.teacher_dir
    weights = teacher_dir / layout.weights("teacher")
    teacher_metrics = json.loads((teacher_dir / layout.metrics("teacher")).read_text())
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in plan.methods}
    skipped = 0
    for seed in plan.seeds:
        for method in plan.methods:
            cfg = plan.run_config(method, seed, weights)
            report = run_pipeline(cfg, stop_after="distill", force=force)
            skipped += all(s.action != "ran" for s in report.stages)
            runs[method].append(_run_record(cfg, seed))
            r = runs[method][-1]
            _logger.info("compare %s seed %d: val top-1 %.2f%%, test top-1 %.2f%%", method, seed, r["val_top1"],
                         r["test_top1"])  # fmt: skip
    result = summarise(plan, teacher_metrics, runs)
    result["skipped_runs"] = skipped
    result["teacher_run"] = "skipped" if all(s.action != "ran" for s in teacher.stages) else "ran"
    write_compare_report(plan.root / "compare", result)
    return result


def _run_record(cfg: RunConfig, seed: int) -> dict[str, Any]:
    run_dir = cfg.run_dir()
    metrics = json.loads((run_dir / layout.metrics("student")).read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {"seed": seed, "val_top1": metrics["val_top1"], "test_top1": metrics["test_top1"],
            "seconds": manifest["stages"]["distill"]["seconds"], "run_dir": str(run_dir)}  # fmt: skip


def summarise(plan: ComparePlan, teacher: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    methods = {}
    for m, rs in runs.items():
        test = [r["test_top1"] for r in rs]
        methods[m] = {
            "test_mean": statistics.fmean(test),
            "test_std": statistics.stdev(test) if len(test) > 1 else 0.0,
            "val_mean": statistics.fmean(r["val_top1"] for r in rs),
            "seconds_per_run": statistics.fmean(r["seconds"] for r in rs),
            "runs": rs,
        }
    alone = methods.get("none", {}).get("test_mean")
    for row in methods.values():
        row["gain_over_student_alone"] = None if alone is None else row["test_mean"] - alone
    b = plan.base
    return {
        "teacher": {
            "model": b.models.teacher,
            **{k: teacher[k] for k in ("source", "val_top1", "test_top1")},
            "train_subset": plan.teacher_config().data.train_subset,
        },  # fmt: skip
        "student": b.models.student,
        "data": b.data.spec,
        "train_subset": b.data.train_subset,
        "img_size": b.models.img_size,
        "epochs": b.train.epochs,
        "seeds": list(plan.seeds),
        "methods": methods,
        "teacher_margin_over_student_alone": None if alone is None else teacher["test_top1"] - alone,
    }
