"""Every CPU target against OpenVINO + NNCF INT8 done by hand as a user would (issue 15).

1. Latency: ResNet18 and deit_small at 224 px (timm, random weights, 1000 classes), batch 1, 2 threads,
   64 fashion-mini calibration images. Targets ort-fp32, ort-int8, ov-fp32, ov-int8 (lfcc-pipeline's
   runners and models) and `peer:openvino-nncf-int8`: `nncf.quantize` with its defaults on the same FP32
   ONNX and calibration images, compiled with INFERENCE_NUM_THREADS 2 and the LATENCY hint. All targets
   are timed in interleaved rounds in one process (the machine is shared); p50 = median of the rounds' p50.
2. top1_drop (ResNet18 only): the calib_accuracy benchmark's student, ResNet18 trained from scratch by the
   pipeline on full Fashion-MNIST (32 px, 3 epochs); `run` with every CPU target benchmarks it on the 10,000
   test images, and the peer (NNCF defaults on export/student.onnx with calib/calib.npz) is benchmarked on
   the same images with `bench --model`. Drops are against the FP32 model on the same runtime.
   deit_small has no trained weights here (nothing can be downloaded): its top1_drop is null.
   --accuracy-data fashion-mini --accuracy-epochs 2: the same on the bundled subset (2,000 test images), when
   full Fashion-MNIST training does not fit the time.

    python benchmarks/cpu_runtimes.py [--rounds 5] [--skip-accuracy] [--work DIR]

Needs the openvino extra (`make test-openvino` makes .venv-openvino) and `make fashion-mnist`.
Writes benchmarks/results/cpu_runtimes.json.
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
RESULTS = ROOT / "benchmarks" / "results" / "cpu_runtimes.json"
PEER = "peer:openvino-nncf-int8"
MODELS = {"resnet18": "resnet18", "deit_small": "deit_small_patch16_224"}
CPU_TARGETS = ["ort-fp32", "ort-int8", "ov-fp32", "ov-int8"]
THREADS = 2


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "lfcc_pipeline", *args], cwd=ROOT, capture_output=True, text=True,
                       env=env)  # fmt: skip
    if r.returncode != 0:
        sys.exit(f"lfcc-pipeline {' '.join(args)} failed:\n{r.stderr[-3000:]}")
    return r


class PeerRunner:
    """The peer as a user writes it: the NNCF-quantized model compiled for the CPU, one infer request."""

    runtime, precision, device, max_batch = "ov", "int8", "cpu", None

    def __init__(self, model) -> None:
        import openvino as ov

        self.request = ov.Core().compile_model(
            model, "CPU", {"INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY"}
        ).create_infer_request()  # fmt: skip

    def prepare(self, x):
        return np.ascontiguousarray(x, np.float32)

    def run(self, x):
        return self.request.infer({0: x})

    def synchronize(self):
        pass

    def __call__(self, x):
        return self.run(self.prepare(x))[0]


def nncf_peer(onnx_path: Path, calib: np.ndarray):
    """nncf.quantize with its defaults on the FP32 ONNX read by OpenVINO, fed the calibration images one by one."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(onnx_path))
    return nncf.quantize(model, nncf.Dataset([calib[i : i + 1] for i in range(len(calib))]))


def latency(name: str, timm_name: str, rounds: int, work: Path) -> dict[str, dict]:
    import timm
    import torch

    from lfcc_pipeline.benchmark.measure import latency as measure
    from lfcc_pipeline.calib.qdq import QuantSpec, quantize_int8
    from lfcc_pipeline.data.sources import load_dataset
    from lfcc_pipeline.data.specs import parse_data_spec
    from lfcc_pipeline.data.transforms import Normalization, to_float
    from lfcc_pipeline.models.onnx_export import export_onnx
    from lfcc_pipeline.runtimes.ort_runner import OrtRunner
    from lfcc_pipeline.runtimes.ov_ir import convert_onnx
    from lfcc_pipeline.runtimes.ov_runner import OvRunner

    torch.manual_seed(0)
    fp32 = work / f"{name}.onnx"
    export_onnx(timm.create_model(timm_name, pretrained=False, num_classes=1000).eval(), fp32, 224)
    ds = load_dataset(parse_data_spec("fashion-mini"))
    norm = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    calib = norm(to_float(ds.train.images[:64], 224)).numpy()
    int8 = quantize_int8(fp32, work / f"{name}.int8.cpu.onnx", calib, QuantSpec(batch_size=16), "cpu", name).path
    convert_onnx(fp32, work / f"{name}.ov.xml")
    convert_onnx(int8, work / f"{name}.int8.ov.xml")
    runners = {
        "ort-fp32": OrtRunner(fp32, "fp32", threads=THREADS),
        "ort-int8": OrtRunner(int8, "int8", threads=THREADS),
        "ov-fp32": OvRunner(work / f"{name}.ov.xml", "fp32", THREADS),
        "ov-int8": OvRunner(work / f"{name}.int8.ov.xml", "int8", THREADS),
        PEER: PeerRunner(nncf_peer(fp32, calib)),
    }
    held_out = norm(to_float(ds.test.images[:64], 224)).numpy()
    ref = runners["ort-fp32"](held_out).argmax(1)
    out = {t: {"agreement_random_weights": round(100 * float((r(held_out).argmax(1) == ref).mean()), 1), "p50s": []}
           for t, r in runners.items()}  # fmt: skip
    for _ in range(rounds):
        for t, r in runners.items():
            out[t]["p50s"].append(round(measure(r, calib[:1], warmup=10, iters=50, max_seconds=8)["p50"], 3))
    for t, o in out.items():
        o["p50_ms"] = round(float(np.median(o["p50s"])), 3)
        print(f"{name:>10} {t:24} p50 {o['p50_ms']:7.2f} ms (rounds {o['p50s']})", flush=True)
    return out


def accuracy(work: Path, data: str = "fashion-mnist", epochs: int = 3) -> dict[str, float]:
    """top1_drop per target of the ResNet18 trained on `data` (its test split; full Fashion-MNIST: 10,000 images)."""
    import openvino as ov
    import timm
    import torch
    from safetensors.torch import save_file

    from lfcc_pipeline.calib.calibset import load_calibset, model_inputs
    from lfcc_pipeline.core.onnx_meta import preprocess_of, read_metadata
    from lfcc_pipeline.runtimes.ov_ir import RT_SECTION

    teacher = work / "test_resnet_random.safetensors"
    if not teacher.is_file():
        torch.manual_seed(0)
        save_file(timm.create_model("test_resnet", pretrained=False, num_classes=10).state_dict(), str(teacher))
    out = work / f"{data}-resnet18"
    targets = [a for t in CPU_TARGETS for a in ("--target", t)]
    base = ["--teacher", "test_resnet", "--teacher-weights", str(teacher), "--teacher-epochs", "0",
            "--student", "resnet18", "--method", "none", "--data", data, "--img-size", "32",
            "--epochs", str(epochs), "--batch-size", "128", "--lr", "2e-3", "--warmup-epochs", "0.2", "--no-pretrained",
            "--no-calib-teacher", *targets, "--threads", str(THREADS), "--out", str(out)]  # fmt: skip
    t0 = time.perf_counter()
    cli("run", *base, "--bench-iters", "20", "--bench-warmup", "5", "--max-int8-drop", "100")
    print(f"{data} resnet18: run in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = {r["target"]: r for r in json.loads((out / "bench" / "report.json").read_text())["rows"]
            if r["model"] == "student"}  # fmt: skip
    ref = rows["ort-fp32"]["top1"]  # FP32 rows: points against ONNX Runtime's FP32 row
    drops = {t: rows[t].get("top1_drop", round(ref - rows[t]["top1"], 3)) for t in CPU_TARGETS}
    # the peer, by hand: NNCF defaults on the exported FP32 ONNX with the run's calibration images
    onnx_path = out / "export" / "student.onnx"
    meta = read_metadata(onnx_path)
    cs = load_calibset(out / "calib" / "calib.npz")
    x = model_inputs(cs, preprocess_of(meta, onnx_path), (1, 3, 32, 32), model_name="student.onnx", origin="calib")
    peer = nncf_peer(onnx_path, x)
    for key, value in meta.items():  # our metadata, so that `bench --model` preprocesses the test images alike
        peer.set_rt_info(value, [RT_SECTION, key])
    ov.save_model(peer, str(work / "peer.xml"), compress_to_fp16=False)
    report = work / "peer-report"
    cli("bench", "--model", str(out / "export" / "student.ov.xml"), "--model", str(work / "peer.xml"),
        "--data", data, "--threads", str(THREADS), "--bench-iters", "5", "--out", str(report))  # fmt: skip
    peer_rows = {r["target"]: r for r in json.loads((report / "report.json").read_text())["rows"]}
    drops[PEER] = peer_rows["ov-int8"]["top1_drop"]
    drops["fp32_top1"] = rows["ort-fp32"]["top1"]
    drops["test_images"] = json.loads((out / "bench" / "report.json").read_text())["data"]["images"]
    drops["data"], drops["epochs"] = data, epochs
    return drops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--accuracy-data", default="fashion-mnist", help="fashion-mnist (the goal's) or fashion-mini")
    ap.add_argument("--accuracy-epochs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".runs" / "cpu_runtimes")
    a = ap.parse_args()
    from lfcc_pipeline.benchmark.results import record_result
    from lfcc_pipeline.runtimes.probe import probe

    a.work.mkdir(parents=True, exist_ok=True)
    drops = {} if a.skip_accuracy else accuracy(a.work, a.accuracy_data, a.accuracy_epochs)
    load = [os.getloadavg()[0]]
    measured = {m: latency(m, MODELS[m], a.rounds, a.work) for m in a.models}
    load.append(os.getloadavg()[0])
    rows = [{"model": m, "target": t, "p50_ms": o["p50_ms"], "top1_drop": drops.get(t) if m == "resnet18" else None}
            for m, per in measured.items() for t, o in per.items()]  # fmt: skip
    env = probe()
    record_result(RESULTS, "rows", rows)
    record_result(RESULTS, "detail", {
        "latency": measured, "accuracy": drops or None, "threads": THREADS, "batch": 1, "rounds": a.rounds,
        "loadavg_1min_start_end": load,
        "env": {k: env.get(k) for k in ("cpu", "cpu_count", "onnxruntime", "openvino", "nncf", "openvino_cpu")},
    })  # fmt: skip
    print("\n| model | target | p50 ms | top-1 drop |\n| --- | --- | --- | --- |")
    for r in rows:
        drop = "–" if r["top1_drop"] is None else f"{r['top1_drop']:.2f}"
        print(f"| {r['model']} | {r['target']} | {r['p50_ms']:.2f} | {drop} |")


if __name__ == "__main__":
    main()
