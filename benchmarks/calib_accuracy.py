"""INT8/FP16 accuracy and CPU latency of the calibrated models, written to benchmarks/results/.

Two measurements (issue 4):

1. Accuracy: a ResNet18 student trained from scratch by the pipeline (`--method none`, a tiny
   untrained test_resnet as the nominal teacher) on fashion-mini and on full Fashion-MNIST; then
   `calibrate` with each calibration method and `bench` on the test split. Reported: top-1 of the
   FP32 student and the top-1 drop of the INT8 CPU flavour (ort-int8), of the TensorRT-flavour
   Q/DQ model run by ONNX Runtime, and of FP16. Goal: drop <= 0.3 points for ResNet18.
2. Latency: ResNet18 at 224 px (random weights, 1000 classes), batch 1, ONNX Runtime CPU provider
   with 2 threads: FP32 vs the INT8 CPU flavour (and the other models), interleaved rounds so that
   both see the same machine load. Goal: INT8 >= 2.5x faster than FP32.

    python benchmarks/calib_accuracy.py                  # both data sets, all methods
    python benchmarks/calib_accuracy.py --quick          # fashion-mini only, one method
    python benchmarks/calib_accuracy.py --calib-tool modelopt --name calib_accuracy_modelopt

Runs offline (HF_HUB_OFFLINE=1 is set); Fashion-MNIST comes from Debian's dataset-fashion-mnist
(`make fashion-mnist`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_cli import ROOT, cli, student_only_args

RESULTS = ROOT / "benchmarks" / "results"
QDQ_TARGET = "trt-int8 (qdq via ort)"


def accuracy(data: str, epochs: int, img_size: int, methods: list[str], tool: str, work: Path) -> dict:
    """Train once, then calibrate + bench per method; drops on the test split."""
    out = work / data.replace(":", "_").replace("/", "_")
    base = [*student_only_args(work, "resnet18", data, img_size, epochs), "--calib-tool", tool,
            "--target", "ort-fp32", "--target", "ort-int8", "--target", "ort-fp16",
            "--bench-iters", "20", "--bench-warmup", "5", "--out", str(out)]  # fmt: skip
    t0 = time.perf_counter()
    cli("export", *base)
    train_s = time.perf_counter() - t0
    result = {
        "data": data,
        "img_size": img_size,
        "epochs": epochs,
        "train_and_export_s": round(train_s, 1),
        "methods": {},
    }
    for method in methods:
        t0 = time.perf_counter()
        cli("run", *base, "--calib-method", method, "--max-int8-drop", "100")
        seconds = time.perf_counter() - t0
        report = json.loads((out / "bench" / "report.json").read_text())
        rows = {r["target"]: r for r in report["rows"] if r["model"] == "student"}
        calib = json.loads((out / "calib" / "accuracy.json").read_text())
        fp32 = rows["ort-fp32"]["top1"]
        result["methods"][method] = {
            "test_images": report["data"]["images"],
            "fp32_top1": fp32,
            "int8_cpu_top1": rows["ort-int8"]["top1"],
            "int8_cpu_drop": round(fp32 - rows["ort-int8"]["top1"], 3),
            "int8_trt_qdq_top1": rows[QDQ_TARGET]["top1"],
            "int8_trt_qdq_drop": round(fp32 - rows[QDQ_TARGET]["top1"], 3),
            "fp16_top1": rows["ort-fp16"]["top1"],
            "fp16_drop": round(fp32 - rows["ort-fp16"]["top1"], 3),
            "trt_tool": calib["student"]["int8.trt"]["tool"],
            "fp16_tool": calib["student"]["fp16"]["tool"],
            "calibrate_and_bench_s": round(seconds, 1),
        }
        m = result["methods"][method]
        print(
            f"{data:>16} {method:>10}: FP32 {fp32:.2f}%  int8-cpu drop {m['int8_cpu_drop']:+.2f}  "
            f"trt-qdq drop {m['int8_trt_qdq_drop']:+.2f}  fp16 drop {m['fp16_drop']:+.2f}  ({m['test_images']} images)",
            flush=True,
        )
    return result


def latency(tool: str, rounds: int, iters: int, work: Path) -> dict:
    """ResNet18 224 px batch 1, 2 threads: FP32 vs the calibrated models, interleaved rounds."""
    import timm
    import torch

    from lfcc_pipeline.benchmark.measure import latency as measure
    from lfcc_pipeline.calib.fp16 import convert_fp16
    from lfcc_pipeline.calib.qdq import QuantSpec, quantize_int8
    from lfcc_pipeline.data.sources import load_dataset
    from lfcc_pipeline.data.specs import parse_data_spec
    from lfcc_pipeline.data.transforms import Normalization, to_float
    from lfcc_pipeline.models.onnx_export import export_onnx
    from lfcc_pipeline.runtimes.ort_runner import OrtRunner

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    fp32 = work / "resnet18_224.onnx"
    export_onnx(model, fp32, 224)
    ds = load_dataset(parse_data_spec("fashion-mini"))
    norm = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    calib = norm(to_float(ds.train.images[:64], 224)).numpy()
    spec = QuantSpec(method="max", batch_size=16, tool=tool)
    made = {"fp32": (fp32, "fp32")}
    build_s = {}
    for flavour in ("cpu", "trt"):
        t0 = time.perf_counter()
        p = quantize_int8(fp32, work / f"resnet18_224.int8.{flavour}.onnx", calib, spec, flavour, "resnet18")
        build_s[f"int8.{flavour}"] = round(time.perf_counter() - t0, 1)
        made[f"int8.{flavour} ({p.tool})"] = (p.path, "int8")
    p = convert_fp16(fp32, work / "resnet18_224.fp16.onnx", calib, spec, "resnet18")
    made[f"fp16 ({p.tool})"] = (p.path, "fp16")
    runners = {k: OrtRunner(path, prec, threads=2) for k, (path, prec) in made.items()}
    sample = calib[:1]
    p50s: dict[str, list[float]] = {k: [] for k in runners}
    load = [os.getloadavg()[0]]
    for _ in range(rounds):
        for k, r in runners.items():
            p50s[k].append(measure(r, sample, warmup=5, iters=iters, max_seconds=30)["p50"])
    load.append(os.getloadavg()[0])
    med = {k: float(np.median(v)) for k, v in p50s.items()}
    int8_key = next(k for k in med if k.startswith("int8.cpu"))
    result = {
        "model": "timm resnet18, random weights, 1000 classes, 224 px, batch 1",
        "runtime": "onnxruntime CPUExecutionProvider, intra_op_num_threads=2",
        "rounds": rounds,
        "iters_per_round": iters,
        "p50_ms_median_of_rounds": {k: round(v, 3) for k, v in med.items()},
        "p50_ms_per_round": {k: [round(x, 3) for x in v] for k, v in p50s.items()},
        "speedup_int8_cpu_vs_fp32": round(med["fp32"] / med[int8_key], 2),
        "build_s": build_s,
        "loadavg_1min_start_end": [round(x, 2) for x in load],
    }
    for k, v in med.items():
        print(f"resnet18 224px b1 2 threads {k:>32}: p50 {v:7.2f} ms  ({med['fp32'] / v:.2f}x vs fp32)", flush=True)
    return result


def env() -> dict:
    import onnx
    import onnxruntime

    from lfcc_pipeline.calib.qdq import modelopt_version
    from lfcc_pipeline.runtimes.probe import cpu_name

    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "modelopt": modelopt_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _kept_parts(path: Path, skip_accuracy: bool, skip_latency: bool) -> dict:
    """The parts of an earlier results file that this run skips, each with the environment it was
    measured in (so --skip-accuracy does not erase the accuracy results, nor the reverse)."""
    if not path.is_file() or not (skip_accuracy or skip_latency):
        return {}
    old = json.loads(path.read_text())
    kept = {}
    if skip_accuracy and old.get("accuracy"):
        kept["accuracy"] = old["accuracy"]
        kept["accuracy_env"] = old.get("accuracy_env", old.get("env"))
    if skip_latency and old.get("latency"):
        kept["latency"] = {"env": old.get("env"), **old["latency"]}
    return kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fashion-mini only, max calibration, fewer rounds")
    ap.add_argument("--methods", default="max,entropy,percentile")
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--mini-epochs", type=int, default=8)
    ap.add_argument("--full-epochs", type=int, default=3)
    ap.add_argument("--calib-tool", default="auto", help="auto | modelopt | ort")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-full", action="store_true", help="skip full Fashion-MNIST")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--work", type=Path, default=None, help="run directories (default: a temporary directory)")
    ap.add_argument("--name", default="calib_accuracy", help="results/<name>.json")
    a = ap.parse_args()
    methods = ["max"] if a.quick else a.methods.split(",")
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="lfcc-bench-") as tmp:
        work = a.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        results = {"env": env(), "accuracy": [], "goal": {"resnet18_int8_drop_max": 0.3, "int8_cpu_speedup_min": 2.5}}
        results.update(_kept_parts(RESULTS / f"{a.name}.json", a.skip_accuracy, a.skip_latency))
        if not a.skip_accuracy:
            results["accuracy_env"] = results["env"]
            results["accuracy"] = [accuracy("fashion-mini", a.mini_epochs, a.img_size, methods, a.calib_tool, work)]
        if not (a.quick or a.skip_full or a.skip_accuracy):
            results["accuracy"].append(
                accuracy("fashion-mnist", a.full_epochs, a.img_size, methods, a.calib_tool, work)
            )
        if not a.skip_latency:
            results["latency"] = {**latency(a.calib_tool, 2 if a.quick else a.rounds, 50, work), "env": results["env"]}
        results["seconds"] = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{a.name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
