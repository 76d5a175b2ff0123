"""Accuracy-aware INT8: all-INT8 vs mixed precision under --max-int8-drop, written to
benchmarks/results/int8_mixed.json (issue 14).

Per model: trained from scratch by the pipeline on the bundled fashion-mini (`--method none`, a tiny
untrained test_resnet as the nominal teacher), exported, then `calibrate --max-int8-drop B`, which
keeps layers in higher precision where the all-INT8 student drops more than B top-1 points on the
validation images (calib/accuracy.json records the search). Per INT8 flavour one row:
  all_int8_drop, mixed_drop  top-1 points lost against FP32 on the test split (held out from both
                             calibration and the budget search); val_* the same on the search's images
  layers_kept                the layers the mixed model keeps in higher precision
  fp32_ms, all_int8_ms, mixed_ms  ONNX Runtime CPU, batch 1, 2 threads, p50, median of interleaved rounds
The all-INT8 model is made again from the same calib.npz and settings (deterministic) and checked to
give the mixed model back once the kept layers are put back in float.

    nice -n 10 python benchmarks/int8_mixed.py                 # resnet18, 3 epochs, budget 0.3
    python benchmarks/int8_mixed.py --epochs 1 --rounds 3      # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "lfcc_pipeline", *args], cwd=ROOT, capture_output=True, text=True,
                       env=env)  # fmt: skip
    if r.returncode != 0:
        sys.exit(f"lfcc-pipeline {' '.join(args)} failed:\n{r.stderr[-3000:]}")
    return r


def _untrained_teacher(work: Path) -> Path:
    import timm
    import torch
    from safetensors.torch import save_file

    path = work / "test_resnet_random.safetensors"
    if not path.is_file():
        torch.manual_seed(0)
        save_file(timm.create_model("test_resnet", pretrained=False, num_classes=10).state_dict(), str(path))
    return path


def _test_inputs(run: Path):
    from lfcc_pipeline.calib import graph
    from lfcc_pipeline.core.onnx_meta import preprocess_of
    from lfcc_pipeline.data.sources import load_dataset
    from lfcc_pipeline.data.specs import parse_data_spec
    from lfcc_pipeline.data.transforms import Normalization, to_float

    fp32 = run / "export" / "student.onnx"
    pre = preprocess_of(graph.metadata(graph.load(fp32)), fp32)
    ds = load_dataset(parse_data_spec("fashion-mini"))
    x = Normalization(pre.mean, pre.std)(to_float(ds.test.images, pre.img_size)).numpy()
    return x, ds.test.labels.numpy()


def _all_int8(run: Path, flavour: str, mixed: Path) -> Path:
    """The all-INT8 model of `flavour`, made again; checked against the mixed model on disk."""
    from lfcc_pipeline.calib import graph
    from lfcc_pipeline.calib.calibset import load_calibset, model_inputs
    from lfcc_pipeline.calib.layers import float_constants, keep_float, kept_layers
    from lfcc_pipeline.calib.qdq import QuantSpec, quantize_int8
    from lfcc_pipeline.calib.sensitivity import run_logits
    from lfcc_pipeline.core.onnx_meta import preprocess_of

    fp32 = run / "export" / "student.onnx"
    model = graph.load(fp32)
    x = model_inputs(load_calibset(run / "calib" / "calib.npz"), preprocess_of(graph.metadata(model), fp32))
    dst = run / "calib" / f"student.{flavour}.all-int8.onnx"
    quantize_int8(fp32, dst, x, QuantSpec(), flavour.split(".")[1], "student")
    kept = [k["node"] for k in kept_layers(graph.load(mixed))]
    if kept:
        again = keep_float(graph.load(dst), kept, float_constants(model))
        same = np.abs(run_logits(again, x[:64]) - run_logits(graph.load(mixed), x[:64])).max()
        if same > 1e-4:
            sys.exit(f"{dst.name} with {kept} in float differs from {mixed.name} by {same}: not reproducible")
    return dst


def _latency(paths: dict[str, tuple[Path, str]], sample: np.ndarray, rounds: int, iters: int) -> dict[str, float]:
    from lfcc_pipeline.benchmark.measure import latency as measure
    from lfcc_pipeline.runtimes.ort_runner import OrtRunner

    runners = {k: OrtRunner(p, prec, threads=2) for k, (p, prec) in paths.items()}
    p50s: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for k, r in runners.items():
            p50s[k].append(measure(r, sample, warmup=10, iters=iters, max_seconds=20)["p50"])
    return {k: round(float(np.median(v)), 4) for k, v in p50s.items()}


def measure_model(name: str, epochs: int, budget: float, rounds: int, iters: int, work: Path) -> list[dict]:
    from lfcc_pipeline.calib.mixed import top1
    from lfcc_pipeline.calib.sensitivity import run_logits

    run = work / name
    base = ["--teacher", "test_resnet", "--teacher-weights", str(_untrained_teacher(work)), "--teacher-epochs", "0",
            "--student", name, "--method", "none", "--data", "fashion-mini", "--img-size", "32",
            "--epochs", str(epochs), "--batch-size", "128", "--lr", "2e-3", "--warmup-epochs", "0.2",
            "--no-pretrained", "--no-calib-teacher", "--target", "ort-int8", "--out", str(run)]  # fmt: skip
    t0 = time.perf_counter()
    cli("export", *base)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cli("calibrate", *base, "--max-int8-drop", str(budget))
    calib_s = time.perf_counter() - t0
    acc = json.loads((run / "calib" / "accuracy.json").read_text())
    x, y = _test_inputs(run)
    fp32 = run / "export" / "student.onnx"
    ref_top1 = top1(run_logits(fp32, x, 2), y)
    rows = []
    for flavour in ("int8.cpu", "int8.trt"):
        mixed = run / "calib" / f"student.{flavour}.onnx"
        all_int8 = _all_int8(run, flavour, mixed)
        search = acc.get("mixed", {}).get(flavour)
        ms = _latency({"fp32": (fp32, "fp32"), "all": (all_int8, "int8"), "mixed": (mixed, "int8")}, x[:1], rounds,
                      iters)  # fmt: skip
        rows.append({
            "model": name, "flavour": flavour,
            "all_int8_drop": round(ref_top1 - top1(run_logits(all_int8, x, 2), y), 3),
            "mixed_drop": round(ref_top1 - top1(run_logits(mixed, x, 2), y), 3),
            "layers_kept": [k["module"] or k["node"] for k in (search or {}).get("kept", [])],
            "fp32_ms": ms["fp32"], "all_int8_ms": ms["all"], "mixed_ms": ms["mixed"],
            "val_all_int8_drop": search["all_int8_drop"] if search else acc["student"][flavour]["top1_drop"],
            "val_mixed_drop": acc["student"][flavour]["top1_drop"], "budget": budget,
            "fp32_top1_test": ref_top1, "test_images": int(len(y)), "val_images": acc["images"],
            "epochs": epochs, "train_and_export_s": round(train_s, 1), "calibrate_s": round(calib_s, 1),
        })  # fmt: skip
        r = rows[-1]
        print(f"{name} {flavour}: drop {r['all_int8_drop']:+.2f} -> {r['mixed_drop']:+.2f} (test), kept "
              f"{r['layers_kept'] or 'none'}; p50 fp32 {r['fp32_ms']:.3f} all-int8 {r['all_int8_ms']:.3f} "
              f"mixed {r['mixed_ms']:.3f} ms", flush=True)  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["resnet18"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-int8-drop", type=float, default=0.3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--work", type=Path, default=None, help="keep the runs here (default: a temporary directory)")
    args = ap.parse_args()
    import tempfile

    from lfcc_pipeline.benchmark.results import record_result

    with tempfile.TemporaryDirectory(prefix="int8-mixed-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = [r for m in args.models for r in measure_model(m, args.epochs, args.max_int8_drop, args.rounds,
                                                               args.iters, work)]  # fmt: skip
    import onnxruntime

    env = {"onnxruntime": onnxruntime.__version__, "cpu_count": os.cpu_count(), "loadavg_1min": os.getloadavg()[0],
           "runtime": "onnxruntime CPUExecutionProvider, intra_op_num_threads=2, batch 1"}  # fmt: skip
    record_result(RESULTS / "int8_mixed.json", "fashion-mini", {"rows": rows, "env": env})


if __name__ == "__main__":
    main()
