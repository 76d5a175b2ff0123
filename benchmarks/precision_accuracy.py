"""CPU training precision and accuracy: the demo's teacher and student trained in bf16 autocast and in fp32,
side by side (issue 16, item 5), written to benchmarks/results/precision_accuracy.json.

Each (seed, precision) is `lfcc-pipeline distill` with `make demo`'s options (convnext_atto teacher trained
10 epochs from scratch, LFCC into test_efficientnet for 5 epochs, fashion-mini, 32 px) and `--precision`
fp32 or bf16, seeds interleaved so that both precisions see the same machine load. Per run: the teacher's
and the student's val and test top-1, the precision each stage recorded, and the teacher and distill
seconds; per precision the mean and std over seeds; and the bf16 - fp32 differences against the spread of
the seeds. bf16 only pays on CPUs that compute it natively (avx512_bf16 / amx_bf16): the machine is recorded.

    python benchmarks/precision_accuracy.py                 # seeds 0,1,2 (about 20 min on 2 cores)
    python benchmarks/precision_accuracy.py --seeds 0       # one pair of runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench_cli import ROOT, cli

RESULTS = ROOT / "benchmarks" / "results" / "precision_accuracy.json"
DEMO = ["--teacher", "convnext_atto", "--student", "test_efficientnet", "--data", "fashion-mini", "--img-size", "32",
        "--teacher-epochs", "10", "--epochs", "5", "--no-pretrained"]  # fmt: skip
PRECISIONS = ("fp32", "bf16")


def one_run(work: Path, precision: str, seed: int) -> dict:
    out = work / f"{precision}-seed{seed}"
    cli("distill", *DEMO, "--precision", precision, "--seed", str(seed), "--out", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    row = {"precision": precision, "seed": seed}
    for role, stage in (("teacher", "teacher"), ("student", "distill")):
        m = json.loads((out / role / "metrics.json").read_text())
        row.update({f"{role}_val_top1": m["val_top1"], f"{role}_test_top1": m["test_top1"],
                    f"{role}_precision": m.get("precision"), f"{stage}_s": manifest["stages"][stage]["seconds"]})  # fmt: skip
    return row


def summary(rows: list[dict]) -> dict:
    out = {}
    for p in PRECISIONS:
        mine = [r for r in rows if r["precision"] == p]
        out[p] = {"runs": len(mine)}
        for key in ("teacher_test_top1", "student_test_top1", "teacher_s", "distill_s"):
            vals = [r[key] for r in mine]
            out[p][key] = statistics.fmean(vals)
            out[p][key + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
    for key in ("teacher_test_top1", "student_test_top1"):
        out[f"bf16_minus_fp32_{key}"] = out["bf16"][key] - out["fp32"][key]
    out["fp32_over_bf16_seconds"] = (out["fp32"]["teacher_s"] + out["fp32"]["distill_s"]) / (
        out["bf16"]["teacher_s"] + out["bf16"]["distill_s"]
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--work", type=Path, default=None, help="keep the runs here (default: a temporary directory)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    from lfcc_pipeline.benchmark.results import record_result
    from lfcc_pipeline.runtimes.probe import cpu_name
    from lfcc_pipeline.training.precision import cpu_bf16_flags

    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for seed in seeds:
            for p in PRECISIONS if seed % 2 == 0 else PRECISIONS[::-1]:
                rows.append(one_run(work, p, seed))
                r = rows[-1]
                print(f"seed {seed} {p}: teacher {r['teacher_test_top1']:.2f} ({r['teacher_s']:.0f} s), student "
                      f"{r['student_test_top1']:.2f} ({r['distill_s']:.0f} s)", flush=True)  # fmt: skip
    s = summary(rows)
    for p in PRECISIONS:
        print(f"{p}: teacher {s[p]['teacher_test_top1']:.2f} ± {s[p]['teacher_test_top1_std']:.2f}, student "
              f"{s[p]['student_test_top1']:.2f} ± {s[p]['student_test_top1_std']:.2f}, "
              f"{s[p]['teacher_s'] + s[p]['distill_s']:.0f} s per run")  # fmt: skip

    env = {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "native_bf16_flags": cpu_bf16_flags(),
           "total_seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    record_result(args.out, "demo", {"rows": rows, "summary": s, "env": env})


if __name__ == "__main__":
    main()
