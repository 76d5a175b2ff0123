"""Distillation methods side by side: one teacher, one student, the same budget, several seeds.

    make fashion-mnist                        # Debian's dataset-fashion-mnist (full Fashion-MNIST)
    python benchmarks/compare_methods.py      # CPU default (6 methods x 3 seeds): about 40 minutes on 2 cores

The teacher is trained once through the pipeline (`lfcc-pipeline teacher`), then every
(method, seed) distills a fresh student from it with `--teacher-weights ... --teacher-epochs 0`
(the pipeline's own stages, run directories under benchmarks/.runs/, so an interrupted benchmark
resumes and finished runs are skipped). Prints mean ± std test top-1 per method and writes
benchmarks/results/compare_methods.json.

The papers' protocol on a GPU (CIFAR-100 at 224 px, ImageNet-pretrained teacher fine-tuned first):

    python benchmarks/compare_methods.py --data cifar100 --teacher vit_s --student resnet18 \
        --img-size 224 --preset cifar100 --train-subset 0 --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

from lfcc_pipeline.benchmark.results import record_result
from lfcc_pipeline.core.config import (
    DataConfig,
    DistillConfig,
    ModelsConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
)  # fmt: skip
from lfcc_pipeline.core.progress import setup_logging
from lfcc_pipeline.pipeline.runner import run_pipeline
from lfcc_pipeline.presets import apply_preset

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "compare_methods.json"


def machine() -> dict:
    """Where the figures were measured: from-scratch teachers, and so every method's result, differ
    between CPU models (float summation order), as do the seconds."""
    import os
    import platform

    import torch

    from lfcc_pipeline.runtimes.probe import cpu_name

    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}  # fmt: skip


def base_config(args) -> RunConfig:
    cfg = RunConfig(
        models=ModelsConfig(args.teacher, args.student, args.img_size, pretrained=args.pretrained),
        data=DataConfig(args.data, train_subset=args.train_subset or None),
        train=TrainConfig(
            epochs=args.epochs, teacher_epochs=args.teacher_epochs, batch_size=args.batch_size,
            precision=args.precision, optim=OptimConfig(lr=args.lr),
        ),
        device=args.device,
    )  # fmt: skip
    return apply_preset(cfg, args.preset) if args.preset else cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--teacher", default="resnet18")
    ap.add_argument("--student", default="test_vit")
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--train-subset", type=int, default=10000, help="0: the whole training split")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--teacher-epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--preset", default=None, help="cifar100 | imagenet (the papers' recipes)")
    ap.add_argument("--methods", default="none,kd,ofa,lfcc,cakd,tas")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--runs", type=Path, default=HERE / ".runs" / "compare")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a DistillConfig field for every method, e.g. --set lfcc_weight=0.5")  # fmt: skip
    args = ap.parse_args()
    setup_logging()
    methods, seeds = args.methods.split(","), [int(s) for s in args.seeds.split(",")]
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        default = getattr(DistillConfig(), key)
        if isinstance(default, bool):
            overrides[key] = value.lower() in ("1", "true", "yes", "on")
        elif isinstance(default, tuple):
            overrides[key] = tuple(int(v) for v in value.split(","))
        else:
            overrides[key] = type(default or 0.0)(value)

    t0 = time.perf_counter()
    base = base_config(args)
    tag = f"{args.teacher}-{args.student}-{args.img_size}px-{args.data.replace(':', '_').replace('/', '_')}"
    teacher_dir = args.runs / tag / "teacher"
    run_pipeline(dataclasses.replace(base, out=teacher_dir, distill=DistillConfig(method="none")), stop_after="teacher")
    teacher_metrics = json.loads((teacher_dir / "teacher" / "metrics.json").read_text())
    teacher_weights = teacher_dir / "teacher" / "model.safetensors"

    results: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in seeds:
        for method in methods:
            variant = "".join(f"-{k}={v}" for k, v in sorted(overrides.items())).replace(" ", "")
            out = args.runs / tag / f"{method}{variant}-seed{seed}"
            cfg = dataclasses.replace(
                base, out=out, seed=seed, distill=DistillConfig(method=method, **overrides),
                models=dataclasses.replace(base.models, teacher_weights=teacher_weights),
                train=dataclasses.replace(base.train, teacher_epochs=0),
            )  # fmt: skip
            run_pipeline(cfg, stop_after="distill")
            metrics = json.loads((out / "student" / "metrics.json").read_text())
            manifest = json.loads((out / "manifest.json").read_text())
            results[method].append({"seed": seed, "test_top1": metrics["test_top1"], "val_top1": metrics["val_top1"],
                                    "seconds": manifest["stages"]["distill"]["seconds"]})  # fmt: skip
            print(f"{method:5} seed {seed}: val top-1 {metrics['val_top1']:.2f}%, test top-1 "
                  f"{metrics['test_top1']:.2f}%", flush=True)  # fmt: skip

    table = {}
    for m, runs in results.items():
        accs = [r["test_top1"] for r in runs]
        table[m] = {
            "mean": statistics.fmean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "runs": runs,
            "seconds_per_run": statistics.fmean(r["seconds"] for r in runs),
        }
    print(f"\nteacher {args.teacher} test top-1 {teacher_metrics['test_top1']:.2f}% "
          f"({teacher_metrics['source']}), student {args.student}, {args.img_size} px, {args.data}, "
          f"{args.train_subset or 'all'} training images, {args.epochs} epochs, seeds {seeds}")  # fmt: skip
    print(f"{'method':8} {'top-1 mean ± std':>18} {'s/run':>7}")
    for m, row in table.items():
        print(f"{m:8} {row['mean']:10.2f} ± {row['std']:4.2f} {row['seconds_per_run']:7.0f}")
    if "none" in table:
        gap = teacher_metrics["test_top1"] - table["none"]["mean"]
        print(f"teacher - student alone: {gap:+.2f} points")
    record = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "distill_overrides": overrides,
        "teacher": {k: teacher_metrics[k] for k in ("source", "val_top1", "test_top1", "epochs")},
        "methods": table,
        "total_seconds": time.perf_counter() - t0,
        "machine": machine(),
    }
    key = tag + (f" {' '.join(args.set)}" if args.set else "") + (f" preset={args.preset}" if args.preset else "")
    record_result(args.out, key, record)
    print(f"total {record['total_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
