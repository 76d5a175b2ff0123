"""One-command GPU check (at most 8 minutes on one H100/H200; no TensorRT or network needed).

    python benchmarks/gpu_check.py              # on the GPU machine: writes benchmarks/results/gpu_check.json
    python benchmarks/gpu_check.py --dry-run    # the same code paths on CPU, CI-sized (tiny models, 32 px)

Sections, each in its own process under its own time limit (a section that fails or runs out of time
records its error, and the others still run), each with the peak GPU memory it used:

- tests:      pytest on the GPU tests (tests/gpu, marker `gpu`; TensorRT tests skip without TensorRT);
- throughput: deit_small -> resnet18 at 224 px, optimizer steps per method (bf16 autocast, channels-last),
              eager and torch.compile (benchmarks/distill_throughput.py's step), on-device synthetic data;
- data:       images/s of the GPU data path: JPEG files and webdataset shards read by CPU workers,
              decoded by nvJPEG on the GPU, random resized crop + flip (benchmarks/data_throughput.py);
- distill:    a short real pipeline run on fashion-mini at 224 px (deit_small teacher, resnet18 LFCC
              student) through export (ONNX parity) and an ONNX Runtime fp32 bench.

The goal to measure against: LFCC deit_small -> resnet18 at >= 5,000 images/s on one H100-class GPU in bf16.
Runs with the system's Python packages (PyTorch, timm, onnx, onnxruntime) and the repository on
PYTHONPATH; no virtual environment needed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "gpu_check.json"
GOAL_IPS = 5000  # LFCC deit_small -> resnet18, bf16, one H100-class GPU

# section -> seconds it may take (full run; the sum stays under 8 minutes with start-up to spare)
BUDGET = {"tests": 80, "throughput": 150, "data": 50, "distill": 160}
DRY_BUDGET = {"tests": 120, "throughput": 60, "data": 60, "distill": 120}

# what each section measures: the full protocol and its CI-sized dry run
FULL = {
    "teacher": "deit_s", "student": "resnet18", "img_size": 224, "batch_size": 256, "precision": "bf16",
    "methods": "none,kd,ofa,lfcc", "compile_methods": "kd,lfcc", "warmup": 3, "steps": 10, "rounds": 2,
    "data_images": 2000, "data_batch": 256, "data_batches": 6, "data_rounds": 2,
    "distill_subset": 2000, "distill_batch": 128,
}  # fmt: skip
DRY = {
    "teacher": "test_vit", "student": "test_resnet", "img_size": 32, "batch_size": 8, "precision": "auto",
    "methods": "kd,lfcc", "compile_methods": "", "warmup": 1, "steps": 2, "rounds": 1,
    "data_images": 48, "data_batch": 8, "data_batches": 2, "data_rounds": 1, "distill_subset": 160, "distill_batch": 16,
}  # fmt: skip


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def section_tests(p: dict, device, dry: bool, save) -> dict:
    """pytest on tests/gpu in a child process; pass/fail/skip counts from its summary line."""
    t = BUDGET["tests"] if not dry else DRY_BUDGET["tests"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu or tensorrt", "tests/gpu"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=t - 10, env=_env())
    lines = [ln for ln in r.stdout.strip().splitlines() if ln.strip()]
    summary = lines[-1] if lines else r.stderr.strip()[-300:]
    counts = {}
    for part in summary.strip("= ").split(","):
        words = part.split()
        if len(words) >= 2 and words[0].isdigit():
            counts[words[1]] = int(words[0])
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    out = {"exit_code": r.returncode, "summary": summary, "counts": counts, "failed": failed[:20]}
    if r.returncode not in (0, 5):  # 5: nothing collected
        out["error"] = f"pytest exited {r.returncode}: {summary}"
    return out


def section_throughput(p: dict, device, dry: bool, save) -> dict:
    """Per method, eager then compiled: images/s of optimizer steps (the fastest of the rounds)."""
    import torch
    from distill_throughput import make_step, sync

    budget = (DRY_BUDGET if dry else BUDGET)["throughput"]
    start = time.perf_counter()
    args = argparse.Namespace(teacher=p["teacher"], student=p["student"], img_size=p["img_size"], num_classes=1000,
                              channels_last=device.type == "cuda", precision=p["precision"], compile=False)  # fmt: skip
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(p["batch_size"], 3, p["img_size"], p["img_size"], generator=g, device=device)
    y = torch.randint(0, args.num_classes, (p["batch_size"],), generator=g, device=device)
    plan = [(m, False) for m in p["methods"].split(",")] + [(m, True) for m in p["compile_methods"].split(",") if m]
    rows = []
    for method, compiled in plan:
        row = {"method": method, "compile": compiled}
        rows.append(row)
        left = budget - (time.perf_counter() - start)
        if left < (0.4 if compiled else 0.15) * budget:  # compiling takes longest
            row["error"] = f"not run: {left:.0f} s of the section's time budget left"
            continue
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            step = make_step(method, argparse.Namespace(**{**vars(args), "compile": compiled}), device)
            t0 = time.perf_counter()
            for _ in range(p["warmup"]):
                step(x, y)
            sync(device)
            row["warmup_s"] = round(time.perf_counter() - t0, 2)
            best = float("inf")
            for _ in range(p["rounds"]):
                t0 = time.perf_counter()
                for _ in range(p["steps"]):
                    loss = step(x, y)
                loss.item()
                sync(device)
                best = min(best, (time.perf_counter() - t0) / p["steps"])
            row.update(step_ms=round(1e3 * best, 2), images_per_s=round(p["batch_size"] / best, 1))
            if device.type == "cuda":
                row["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        except Exception as e:  # an OOM or a compile failure: recorded, the next method still runs
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        finally:
            step = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
        save(_throughput_summary(p, args, rows))  # what is measured so far survives a timeout
    return _throughput_summary(p, args, rows)


def _throughput_summary(p: dict, args, rows: list[dict]) -> dict:
    lfcc = [r["images_per_s"] for r in rows if r["method"] == "lfcc" and "images_per_s" in r]
    best_lfcc = max(lfcc) if lfcc else None
    return {"protocol": {k: p[k] for k in ("teacher", "student", "img_size", "batch_size", "precision")},
            "channels_last": args.channels_last, "rows": rows, "lfcc_images_per_s": best_lfcc,
            "goal_images_per_s": GOAL_IPS, "meets_goal": None if best_lfcc is None else best_lfcc >= GOAL_IPS}  # fmt: skip


def section_data(p: dict, device, dry: bool, save) -> dict:
    """images/s of the device decode path (nvJPEG on CUDA; torchvision's CPU decoder in the dry run)."""
    from data_throughput import parser, run

    out = Path(tempfile.mkdtemp(prefix="gpu-check-data-"))
    argv = ["--images", str(p["data_images"]), "--img-size", str(p["img_size"]), "--batches", str(p["data_batches"]),
            "--rounds", str(p["data_rounds"]), "--decoders", device.type, "--cache", str(out),
            "--batch-size", str(p["data_batch"]), "--out", str(out / "unused.json")]  # fmt: skip
    result = run(parser().parse_args(argv))
    return {"rows": result["rows"], "workers": result["args"]["workers"], "cpus": result["cpus"]}


def section_distill(p: dict, device, dry: bool, save) -> dict:
    """A short real run: teacher, LFCC distill, export (ONNX parity), ONNX Runtime fp32 bench."""
    from lfcc_pipeline.cli_options import config_from_options
    from lfcc_pipeline.pipeline.runner import run_pipeline

    out = Path(tempfile.mkdtemp(prefix="gpu-check-run-")) / "run"
    opts = {"teacher": p["teacher"], "student": p["student"], "method": "lfcc", "targets": ("ort-fp32",),
            "data": "fashion-mini", "img_size": p["img_size"], "epochs": 1, "teacher_epochs": 1,
            "batch_size": p["distill_batch"], "train_subset": p["distill_subset"], "pretrained": False,
            "bench_iters": 10, "bench_warmup": 3, "bench_max_images": 64 if dry else 512, "out": out}  # fmt: skip
    cfg = config_from_options(opts)
    t0 = time.perf_counter()
    report = run_pipeline(cfg)
    seconds = round(time.perf_counter() - t0, 1)
    student = json.loads((out / "student" / "metrics.json").read_text())
    parity = json.loads((out / "export" / "parity.json").read_text())
    bench = json.loads((out / "bench" / "report.json").read_text())
    return {
        "seconds": seconds,
        "stages": {s.name: {"action": s.action, "seconds": round(s.seconds, 1)} for s in report.stages},
        "student_test_top1": student.get("test_top1"), "precision": student.get("precision"),
        "parity": {role: {k: parity[role][k] for k in ("max_abs_diff", "top1_agreement", "ok")}
                   for role in ("student", "teacher")},
        "bench_rows": [{k: r.get(k) for k in ("model", "target", "top1", "agreement", "throughput_ips")}
                       for r in bench["rows"]],
    }  # fmt: skip


SECTIONS = {"tests": section_tests, "throughput": section_throughput, "data": section_data,
            "distill": section_distill}  # fmt: skip


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_section(name: str, dry: bool, result_file: Path) -> None:
    """In the child process: run one section and write its JSON (with peak GPU memory, or the error)."""
    import torch

    sys.path[:0] = [str(REPO), str(HERE)]
    device = _device()
    t0 = time.perf_counter()

    def save(out: dict) -> None:
        out = {**out, "seconds": out.get("seconds", round(time.perf_counter() - t0, 1))}
        if device.type == "cuda":
            out["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        tmp = result_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1, default=str))
        tmp.replace(result_file)

    try:
        if os.environ.get("LFCC_GPU_CHECK_FAIL") == name:  # fault injection (tests/e2e/test_gpu_check.py)
            raise RuntimeError(f"LFCC_GPU_CHECK_FAIL={name}: a failure injected into this section")
        out = SECTIONS[name](DRY if dry else FULL, device, dry, save)
    except Exception as e:
        out = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:500] if str(e) else ''}"}
    save(out)


def child(name: str, dry: bool, limit: float) -> dict:
    """Run section `name` in a child process under `limit` seconds."""
    with tempfile.TemporaryDirectory() as d:
        result = Path(d) / f"{name}.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--section", name, "--section-out", str(result)]
        cmd += ["--dry-run"] if dry else []
        t0 = time.perf_counter()
        try:
            r = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            partial = json.loads(result.read_text()) if result.is_file() else {}
            return {**partial, "error": f"timed out after {limit:.0f} s" + (" (partial results)" if partial else ""),
                    "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
        if result.is_file():
            return json.loads(result.read_text())
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        return {"error": f"the section's process exited {r.returncode}: {' | '.join(tail)}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny models, 32 px: checks the code paths")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"results file [default: {RESULTS.relative_to(REPO)}; a temp file with --dry-run]",
    )
    ap.add_argument("--section", choices=list(SECTIONS), help=argparse.SUPPRESS)
    ap.add_argument("--section-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.section:
        run_section(args.section, args.dry_run, args.section_out)
        return
    import torch

    sys.path[:0] = [str(REPO)]
    from lfcc_pipeline.benchmark.results import record_result

    out = args.out or (Path(tempfile.gettempdir()) / "gpu_check.dry-run.json" if args.dry_run else RESULTS)
    budget = DRY_BUDGET if args.dry_run else BUDGET
    device = _device()
    if device.type != "cuda" and not args.dry_run:
        print("no CUDA GPU visible: run with --dry-run to check the code paths on CPU", file=sys.stderr)
        sys.exit(2)
    t0 = time.perf_counter()
    sections = {}
    for name in args.only.split(","):
        print(f"gpu_check: {name} (at most {budget[name]} s) ...", flush=True)
        sections[name] = child(name, args.dry_run, budget[name])
        state = f"error: {sections[name]['error']}" if "error" in sections[name] else "ok"
        print(f"gpu_check: {name} {state} ({sections[name].get('seconds', '?')} s)", flush=True)
    peaks = [s["peak_gpu_memory_gb"] for s in sections.values() if "peak_gpu_memory_gb" in s]
    result = {
        "dry_run": args.dry_run,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "seconds": round(time.perf_counter() - t0, 1), "peak_gpu_memory_gb": max(peaks) if peaks else None,
        "sections": sections,
    }  # fmt: skip
    record_result(out, ("dry-run:" if args.dry_run else "") + result["device"], result)
    tp = sections.get("throughput", {})
    if tp.get("lfcc_images_per_s") is not None:
        print(f"LFCC {tp['protocol']['teacher']} -> {tp['protocol']['student']}: {tp['lfcc_images_per_s']:,.0f} "
              f"images/s (goal {GOAL_IPS:,})")  # fmt: skip
    sys.exit(1 if any("error" in s for s in sections.values()) else 0)


if __name__ == "__main__":
    main()
