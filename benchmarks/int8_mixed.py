"""Accuracy-aware INT8: all-INT8 vs mixed precision under --max-int8-drop, written to
benchmarks/results/int8_mixed.json (issue 14), one entry per data set.

Per model: trained from scratch by the pipeline (`--method none`, a tiny untrained test_resnet as the
nominal teacher) on --data (the bundled fashion-mini, or the full Fashion-MNIST of
`make fashion-mnist`, the calib_accuracy benchmark's data), exported, then `calibrate
--max-int8-drop B`, which keeps layers in higher precision where the all-INT8 student drops more
than B top-1 points on --calib-eval-images validation images (calib/accuracy.json records the
search). ViTs (vit_p4, deit_*) get the transformer-aware Q/DQ placement automatically. Per INT8
flavour one row:
  all_int8_drop, mixed_drop  top-1 points lost against FP32 on the test split (held out from both
                             calibration and the budget search); val_* the same on the search's images
  agreement_all_int8, agreement_mixed  top-1 agreement with the FP32 model on the test split (%)
  layers_kept                the layers the mixed model keeps in higher precision
  fp32_ms, all_int8_ms, mixed_ms  ONNX Runtime CPU, batch 1, 2 threads, p50, median of interleaved rounds
  deploy_*                   the same at --deploy-img-size (224 px) for CNN students (int8.cpu row): the
                             trained weights exported again at that size, quantized from the same
                             calibration images (resized) with the same layers kept. At 32 px a ResNet18
                             is ~37 MFLOPs and per-op overhead hides what INT8 saves; apps run 224 px.
                             ViTs have a fixed token grid (no twin; benchmarks/cpu_runtimes.py times
                             deit_small at 224 px).
The all-INT8 model is made again from the same calib.npz and settings (deterministic) and checked to
give the mixed model back once the kept layers are put back in float.

    make fashion-mnist
    nice -n 10 python benchmarks/int8_mixed.py --data fashion-mnist --models resnet18 vit_p4
    python benchmarks/int8_mixed.py                            # fashion-mini, resnet18, 3 epochs, budget 0.3
    python benchmarks/int8_mixed.py --epochs 1 --rounds 3      # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from bench_cli import ROOT, cli, student_only_args

RESULTS = ROOT / "benchmarks" / "results"


def _test_inputs(run: Path, data: str):
    from lfcc_pipeline.calib import graph
    from lfcc_pipeline.core.onnx_meta import preprocess_of
    from lfcc_pipeline.data.sources import load_dataset
    from lfcc_pipeline.data.specs import parse_data_spec
    from lfcc_pipeline.data.transforms import Normalization, to_float

    fp32 = run / "export" / "student.onnx"
    pre = preprocess_of(graph.metadata(graph.load(fp32)), fp32)
    ds = load_dataset(parse_data_spec(data))
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


def _deploy_twin(run: Path, kept: list[str], size: int, rounds: int, iters: int) -> dict | None:
    """fp32/all-INT8/mixed CPU latency of the trained student exported again at `size` px (CNNs only)."""
    import torch

    from lfcc_pipeline.calib import graph
    from lfcc_pipeline.calib.calibset import load_calibset
    from lfcc_pipeline.calib.layers import float_constants, keep_float
    from lfcc_pipeline.calib.qdq import QuantSpec, quantize_int8
    from lfcc_pipeline.core.onnx_meta import preprocess_of
    from lfcc_pipeline.data.transforms import Normalization, to_float
    from lfcc_pipeline.models.onnx_export import export_onnx
    from lfcc_pipeline.models.weights import load_model

    model, recipe = load_model(run / "student" / "model.safetensors")
    if recipe.takes_img_size:
        return None
    src = run / "export" / "student.onnx"
    pre = preprocess_of(graph.metadata(graph.load(src)), src)
    out = run / f"deploy{size}"
    out.mkdir(exist_ok=True)
    fp32 = out / "student.onnx"
    export_onnx(model, fp32, size)
    cs = load_calibset(run / "calib" / "calib.npz")
    x = Normalization(pre.mean, pre.std)(to_float(torch.from_numpy(cs.images), size)).numpy()
    all_int8 = quantize_int8(fp32, out / "student.int8.cpu.all-int8.onnx", x, QuantSpec(), "cpu", "student").path
    mixed = all_int8
    if kept:
        mixed = out / "student.int8.cpu.onnx"
        graph.save(keep_float(graph.load(all_int8), kept, float_constants(graph.load(fp32))), mixed)
    ms = _latency({"fp32": (fp32, "fp32"), "all": (all_int8, "int8"), "mixed": (mixed, "int8")}, x[:1], rounds, iters)
    return {"deploy_img_size": size, "deploy_fp32_ms": ms["fp32"], "deploy_all_int8_ms": ms["all"],
            "deploy_mixed_ms": ms["mixed"], "deploy_speedup_mixed": round(ms["fp32"] / ms["mixed"], 2)}  # fmt: skip


def _latency(paths: dict[str, tuple[Path, str]], sample: np.ndarray, rounds: int, iters: int) -> dict[str, float]:
    from lfcc_pipeline.benchmark.measure import latency as measure
    from lfcc_pipeline.runtimes.ort_runner import OrtRunner

    runners = {k: OrtRunner(p, prec, threads=2) for k, (p, prec) in paths.items()}
    p50s: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for k, r in runners.items():
            p50s[k].append(measure(r, sample, warmup=10, iters=iters, max_seconds=20)["p50"])
    return {k: round(float(np.median(v)), 4) for k, v in p50s.items()}


def measure_model(name: str, data: str, epochs: int, budget: float, eval_images: int, rounds: int, iters: int,
                  work: Path, deploy_size: int) -> list[dict]:  # fmt: skip
    from lfcc_pipeline.calib.mixed import top1
    from lfcc_pipeline.calib.sensitivity import run_logits

    run = work / f"{data}-{name}"
    base = [*student_only_args(work, name, data, 32, epochs), "--target", "ort-int8",
            "--calib-eval-images", str(eval_images), "--out", str(run)]  # fmt: skip
    t0 = time.perf_counter()
    cli("export", *base)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cli("calibrate", *base, "--max-int8-drop", str(budget))
    calib_s = time.perf_counter() - t0
    acc = json.loads((run / "calib" / "accuracy.json").read_text())
    x, y = _test_inputs(run, data)
    fp32 = run / "export" / "student.onnx"
    ref = run_logits(fp32, x, 2)
    ref_top1 = top1(ref, y)
    rows = []
    for flavour in ("int8.cpu", "int8.trt"):
        mixed = run / "calib" / f"student.{flavour}.onnx"
        all_int8 = _all_int8(run, flavour, mixed)
        search = acc.get("mixed", {}).get(flavour)
        ms = _latency({"fp32": (fp32, "fp32"), "all": (all_int8, "int8"), "mixed": (mixed, "int8")}, x[:1], rounds,
                      iters)  # fmt: skip
        logits = {"all": run_logits(all_int8, x, 2), "mixed": run_logits(mixed, x, 2)}
        agree = {k: round(100 * float((v.argmax(1) == ref.argmax(1)).mean()), 2) for k, v in logits.items()}
        rows.append({
            "model": name, "flavour": flavour,
            "all_int8_drop": round(ref_top1 - top1(logits["all"], y), 3),
            "mixed_drop": round(ref_top1 - top1(logits["mixed"], y), 3),
            "agreement_all_int8": agree["all"], "agreement_mixed": agree["mixed"],
            "layers_kept": [k["module"] or k["node"] for k in (search or {}).get("kept", [])],
            "fp32_ms": ms["fp32"], "all_int8_ms": ms["all"], "mixed_ms": ms["mixed"],
            "val_all_int8_drop": search["all_int8_drop"] if search else acc["student"][flavour]["top1_drop"],
            "val_mixed_drop": acc["student"][flavour]["top1_drop"], "budget": budget,
            "fp32_top1_test": ref_top1, "test_images": int(len(y)), "val_images": acc["images"],
            "epochs": epochs, "train_and_export_s": round(train_s, 1), "calibrate_s": round(calib_s, 1),
        })  # fmt: skip
        r = rows[-1]
        if flavour == "int8.cpu" and deploy_size:
            twin = _deploy_twin(run, [k["node"] for k in (search or {}).get("kept", [])], deploy_size, rounds, iters)
            r.update(twin or {})
            if twin:
                print(f"{name} int8.cpu at {deploy_size} px: p50 fp32 {twin['deploy_fp32_ms']:.2f} all-int8 "
                      f"{twin['deploy_all_int8_ms']:.2f} mixed {twin['deploy_mixed_ms']:.2f} ms "
                      f"({twin['deploy_speedup_mixed']:.2f}x)", flush=True)  # fmt: skip
        print(f"{name} {flavour}: drop {r['all_int8_drop']:+.2f} -> {r['mixed_drop']:+.2f} (test), kept "
              f"{r['layers_kept'] or 'none'}; p50 fp32 {r['fp32_ms']:.3f} all-int8 {r['all_int8_ms']:.3f} "
              f"mixed {r['mixed_ms']:.3f} ms", flush=True)  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["resnet18"])
    ap.add_argument("--data", default="fashion-mini", help="fashion-mini | fashion-mnist (make fashion-mnist)")
    ap.add_argument(
        "--calib-eval-images",
        type=int,
        default=None,
        help="validation images of the budget search [fashion-mini: 1000 (all 600); fashion-mnist: 6000]",
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "int8_mixed.json")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-int8-drop", type=float, default=0.3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--deploy-img-size", type=int, default=224, help="CNN latency twin size (0: none)")
    ap.add_argument("--work", type=Path, default=None, help="keep the runs here (default: a temporary directory)")
    args = ap.parse_args()
    import tempfile

    from lfcc_pipeline.benchmark.results import record_result

    with tempfile.TemporaryDirectory(prefix="int8-mixed-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        evals = args.calib_eval_images or (6000 if args.data.startswith("fashion-mnist") else 1000)
        rows = [r for m in args.models for r in measure_model(m, args.data, args.epochs, args.max_int8_drop, evals,
                                                               args.rounds, args.iters, work, args.deploy_img_size)]  # fmt: skip
    import onnxruntime

    from lfcc_pipeline.runtimes.probe import cpu_name

    env = {"onnxruntime": onnxruntime.__version__, "cpu": cpu_name(), "cpu_count": os.cpu_count(), "loadavg_1min": os.getloadavg()[0],
           "runtime": "onnxruntime CPUExecutionProvider, intra_op_num_threads=2, batch 1"}  # fmt: skip
    record_result(args.out, args.data, {"rows": rows, "env": env})


if __name__ == "__main__":
    main()
