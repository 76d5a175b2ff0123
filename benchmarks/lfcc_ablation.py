"""LFCC's open choices, one variant at a time, on validation top-1 (seed 0): the study behind LFCC's
defaults (issue 12, item 3).

    make fashion-mnist
    python benchmarks/lfcc_ablation.py                      # every variant on the vit-cnn pair, in order
    python benchmarks/lfcc_ablation.py --only filter,queue  # some groups
    python benchmarks/lfcc_ablation.py --pair cnn-vit

Each variant is one `compare_methods.py --methods lfcc --seeds 0 --set OPTION=VALUE` run (same data,
budget and cached teacher as the method benchmark; finished runs are skipped, so an interrupted study
resumes). Writes benchmarks/results/lfcc_ablation.json (per pair: every variant's options, val and test
top-1, seconds, and the change in val top-1 against the current defaults) and prints the table.
Defaults are picked on val; test top-1 is recorded but not used to choose.
"""

from __future__ import annotations

import copy

from compare_methods import HERE, parser, run_pair

from lfcc_pipeline.benchmark.results import record_result
from lfcc_pipeline.core.progress import setup_logging

RESULTS = HERE / "results" / "lfcc_ablation.json"

# (group, --set options), most informative first; "default" is the baseline every row is compared with
VARIANTS: list[tuple[str, tuple[str, ...]]] = [
    ("default", ()),
    ("filter", ("lfcc_filter=gauss",)),
    ("stages", ("lfcc_num_stages=1",)),
    ("stages", ("lfcc_num_stages=2",)),
    ("stages", ("lfcc_num_stages=4",)),
    ("scales", ("lfcc_scales=1",)),
    ("scales", ("lfcc_scales=1,2",)),
    ("projector", ("lfcc_proj_depth=1",)),
    ("projector", ("lfcc_proj_depth=3",)),
    ("projector", ("lfcc_train_teacher_proj=false",)),
    ("temperature", ("lfcc_learn_temperature=true",)),
    ("temperature", ("lfcc_temperature=0.05",)),
    ("temperature", ("lfcc_temperature=0.2",)),
    ("queue", ("lfcc_queue=4096",)),
    ("warmup", ("lfcc_warmup_epochs=1.0",)),
    ("weights", ("lfcc_weight=1.0",)),
    ("weights", ("lfcc_weight=4.0",)),
    ("logits", ("kd_weight=0.0",)),
]


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.set_defaults(pair="vit-cnn", out=RESULTS)
    ap.add_argument("--only", default=None, help="comma-separated groups (default: all, in order)")
    args = ap.parse_args()
    setup_logging()
    groups = set(args.only.split(",")) | {"default"} if args.only else None
    pairs = ("vit-cnn", "cnn-vit") if args.pair == "both" else (args.pair,)
    for pair in pairs:
        table, base = {}, None
        for group, options in VARIANTS:
            if groups is not None and group not in groups:
                continue
            run_args = copy.copy(args)
            run_args.set = list(options)
            run_args.out = args.runs / f"{pair}-ablation-runs.json"  # each run's full record, beside the runs
            result = run_pair(pair, run_args, ("lfcc",), (0,))
            row = result["methods"]["lfcc"]["runs"][0]
            base = row["val_top1"] if base is None else base
            name = ",".join(options) or "default"
            table[name] = {"group": group, "options": list(options), "val_top1": round(row["val_top1"], 2),
                           "test_top1": round(row["test_top1"], 2), "seconds": row["seconds"],
                           "val_vs_default": round(row["val_top1"] - base, 2)}  # fmt: skip
            record_result(args.out, pair, {"teacher": result["teacher"], "variants": table,
                                           "machine": result["machine"]})  # fmt: skip
        print(f"| {pair} variant | val top-1 | vs default | test top-1 | s/run |\n| --- | --- | --- | --- | --- |")
        for name, r in table.items():
            print(f"| {name} | {r['val_top1']:.2f} | {r['val_vs_default']:+.2f} | {r['test_top1']:.2f} | "
                  f"{r['seconds']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
