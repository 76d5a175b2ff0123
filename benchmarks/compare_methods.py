"""Distillation methods side by side, as `lfcc-pipeline compare` runs them, on two benchmark pairs.

    make fashion-mnist                                   # Debian's dataset-fashion-mnist (full Fashion-MNIST)
    python benchmarks/compare_methods.py --pair vit-cnn  # the mission's direction: a ViT teacher into a CNN
    python benchmarks/compare_methods.py --pair cnn-vit  # the reverse (the earlier benchmark)
    python benchmarks/compare_methods.py --quick         # one seed, none/kd/lfcc, the vit-cnn pair

Pairs (32 px, Fashion-MNIST, students on a 10k stratified subset, tested on the full 10k test split):
- vit-cnn: teacher `vit_p4` (a ViT with 4x4 patches, 0.8 M parameters, models/small_vits.py) trained
  on the whole 60k training split for 25 epochs, as a hub teacher is pretrained on far more data than the student
  sees; student `resnet18`.
- cnn-vit: teacher `resnet18` trained on the same 10k subset; student timm's `test_vit`.
Every run goes through the pipeline's own stages under benchmarks/.runs/compare/<pair>/ (resumable,
finished runs skipped). Writes benchmarks/results/compare_methods.json: per pair, the teacher, every
run's seed, val and test top-1 and seconds, mean ± std per method, the teacher's margin over the
student alone, and the machine.

A teacher trained here is also copied to benchmarks/teachers/<pair>-<model>-<data>-train<N|all>-e<epochs>
.safetensors (and a .json: its top-1, seconds, machine). Committed, as the vit-cnn teacher takes over an
hour on 2 cores, later runs on any machine load it instead of training again (`--retrain-teacher`: train).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import time
from pathlib import Path

from lfcc_pipeline.benchmark.results import record_result
from lfcc_pipeline.core import layout
from lfcc_pipeline.core.config import DataConfig, ModelsConfig, OptimConfig, RunConfig, TrainConfig
from lfcc_pipeline.core.progress import setup_logging
from lfcc_pipeline.methods import METHODS, distill_config, option_field
from lfcc_pipeline.pipeline.compare import ComparePlan, check_plan, compare

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "compare_methods.json"
TEACHERS = HERE / "teachers"
# pair: (teacher, student, teacher on the whole 60k split, teacher epochs). The ViT teacher gets 25 epochs: at
# 10 it reached 86.90 test top-1, 1.22 points over resnet18 alone (item 1 asks for 2), val still rising.
PAIRS = {"vit-cnn": ("vit_p4", "resnet18", True, 25), "cnn-vit": ("resnet18", "test_vit", False, 10)}
QUICK_METHODS = "none,kd,lfcc"  # about 12.5 min on the vit-cnn pair with its cached teacher (2 cores)


def machine() -> dict:
    import torch

    from lfcc_pipeline.runtimes.probe import cpu_name

    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}  # fmt: skip


def flat_overrides(items: list[str]) -> dict:
    """--set lfcc_weight=0.5 --set lfcc_scales=1,2 -> typed values for methods.distill_config."""
    from lfcc_pipeline.core.options import int_list

    out = {}
    for item in items:
        key, value = item.split("=", 1)
        if "," in value or _is_tuple_option(key):
            out[key] = int_list(value)
        elif value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
        else:
            out[key] = _number_or_text(value)
    return out


def _is_tuple_option(key: str) -> bool:
    """Whether a flat method option (lfcc_scales) is a tuple field, by its declared type (lfcc_num_stages is not)."""
    found = option_field(key)
    return found is not None and "tuple" in str(found[1].type)


def _number_or_text(value: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value  # e.g. lfcc_filter=gauss


def run_pair(pair: str, args, methods: tuple[str, ...], seeds: tuple[int, ...]) -> dict:
    teacher, student, teacher_all_data, teacher_epochs = PAIRS[pair]
    teacher_epochs = teacher_epochs if args.teacher_epochs is None else args.teacher_epochs
    overrides = flat_overrides(args.set)
    base = RunConfig(
        models=ModelsConfig(teacher, student, 32, pretrained=False),
        data=DataConfig(args.data, train_subset=args.train_subset),
        train=TrainConfig(
            epochs=args.epochs, teacher_epochs=teacher_epochs, batch_size=64, optim=OptimConfig(lr=1e-3)
        ),  # fmt: skip
        distill=distill_config(**overrides),
        device=args.device,
    )
    variant = "".join(f"-{k}={v}" for k, v in sorted(overrides.items())).replace(" ", "")
    root = args.runs / f"{pair}{variant}"
    # Variants (--set) share the pair's teacher: it does not depend on the methods' options.
    teacher_root = args.runs / pair / f"teacher-e{teacher_epochs}"
    seen = "all" if teacher_all_data else args.train_subset
    cache = TEACHERS / f"{pair}-{teacher}-{args.data.replace(':', '_').replace('/', '_')}-train{seen}-e{teacher_epochs}"
    cached = _with(cache, ".safetensors").is_file() and not args.retrain_teacher and teacher_epochs > 0
    if cached:  # evaluated again here (val/test top-1 in the results), not trained
        base = dataclasses.replace(
            base, models=dataclasses.replace(base.models, teacher_weights=_with(cache, ".safetensors")),
            train=dataclasses.replace(base.train, teacher_epochs=0),
        )  # fmt: skip
        teacher_root = args.runs / pair / f"teacher-cached-e{teacher_epochs}"
    plan = ComparePlan(base, methods, seeds, root, teacher_all_data=teacher_all_data, teacher_root=teacher_root)
    check_plan(plan, tuple(METHODS))
    t0 = time.perf_counter()
    result = compare(plan)
    # Saved when trained by this run (or not saved yet), so the .json names the machine that trained it.
    if not cached and teacher_epochs > 0 and (result["teacher_run"] == "ran" or not _with(cache, ".json").is_file()):
        save_teacher(plan.teacher_dir, cache, teacher_epochs)
    result["teacher"]["trained"] = json.loads(_with(cache, ".json").read_text()) if cached else None
    result.update(pair=pair, total_seconds=time.perf_counter() - t0, machine=machine(), overrides=overrides)
    for m, row in result["methods"].items():
        print(f"{pair} {m:5} {row['test_mean']:6.2f} ± {row['test_std']:4.2f}  ({row['seconds_per_run']:.0f} s/run)")
    print(f"{pair}: teacher {result['teacher']['test_top1']:.2f}, margin over the student alone "
          f"{result['teacher_margin_over_student_alone']}")  # fmt: skip
    record_result(args.out, f"{pair}{variant} seeds={','.join(map(str, seeds))}", result)
    return result


def save_teacher(teacher_dir: Path, cache: Path, epochs: int) -> None:
    """Copy a teacher trained here to benchmarks/teachers/ (weights, and a .json with how it was trained)."""
    metrics = json.loads((teacher_dir / layout.metrics("teacher")).read_text())
    manifest = json.loads((teacher_dir / "manifest.json").read_text())
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = _with(cache, ".safetensors.tmp")
    shutil.copyfile(teacher_dir / layout.weights("teacher"), tmp)
    info = {"epochs": epochs, "val_top1": metrics["val_top1"], "test_top1": metrics["test_top1"],
            "seconds": manifest["stages"]["teacher"]["seconds"], "machine": machine()}  # fmt: skip
    _with(cache, ".json").write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(_with(cache, ".safetensors"))
    print(f"teacher saved to {_with(cache, '.safetensors')} (commit it: later runs load it)")


def _with(stem: Path, suffix: str) -> Path:
    """stem + suffix (not Path.with_suffix: model and data names may hold dots)."""
    return stem.parent / (stem.name + suffix)


def parser(description: str) -> argparse.ArgumentParser:
    """The options every run of a pair takes (data, budget, device, where runs and results go)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--pair", choices=(*PAIRS, "both"), default=None, help="default: both (vit-cnn with --quick)")
    ap.add_argument("--quick", action="store_true", help=f"one seed, methods {QUICK_METHODS}, the vit-cnn pair")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--train-subset", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--teacher-epochs", type=int, default=None, help="default: 25 (vit-cnn), 10 (cnn-vit)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--retrain-teacher", action="store_true", help="train the teacher even where one is cached")
    ap.add_argument("--methods", default=None, help="default: every method")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--runs", type=Path, default=HERE / ".runs" / "compare")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                    help="a method option for every run, spelled as the flag: --set lfcc_weight=0.5")  # fmt: skip
    return ap


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    setup_logging()
    methods = tuple((args.methods or (QUICK_METHODS if args.quick else ",".join(METHODS))).split(","))
    seeds = (0,) if args.quick else tuple(int(s) for s in args.seeds.split(","))
    pair_arg = args.pair or ("vit-cnn" if args.quick else "both")
    for pair in PAIRS if pair_arg == "both" else (pair_arg,):
        run_pair(pair, args, methods, seeds)


if __name__ == "__main__":
    main()
