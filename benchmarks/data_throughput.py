"""Training-input throughput (images/s) of each image-file path through the pipeline's own loader.

    python benchmarks/data_throughput.py                 # PIL in workers; on a CUDA machine nvJPEG too
    python benchmarks/data_throughput.py --images 8000 --workers 8 --rounds 5

Fashion-MNIST (Debian's IDX files, `make fashion-mnist`; the bundled fashion-mini where they are absent) upscaled to 224 px and written once as JPEGs,
both as an image folder and as webdataset tar shards (under --cache). Each path runs the training
transform (random resized crop + flip to --img-size) in `data.loader.Batches`:

- `--decoders workers`: PIL decodes in --workers loader processes (the CPU path);
- `--decoders cuda`: the workers read bytes, nvJPEG decodes the batch on the GPU (`Batches.decode_on`,
  what the training loop does on CUDA); `cpu` runs that same path with torchvision's CPU decoder.

Paths are interleaved over --rounds (machine noise hits them alike); each round times --batches
batches after its first (worker start-up left out); the fastest round is reported, the median beside it.
Writes benchmarks/results/data_throughput.json.
"""

from __future__ import annotations

import argparse
import io
import itertools
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from lfcc_pipeline.benchmark.results import record_result
from lfcc_pipeline.data.loader import Batches
from lfcc_pipeline.data.sources import FASHION_CLASSES, load_dataset
from lfcc_pipeline.data.specs import DEFAULT_DIRS, DataSpec, parse_data_spec
from lfcc_pipeline.data.tar_shards import write_shard
from lfcc_pipeline.data.workers import resolve_workers, usable_cpus
from lfcc_pipeline.runtimes.probe import cpu_name

RESULTS = Path(__file__).resolve().parent / "results" / "data_throughput.json"
SOURCE_PX = 224  # the stored JPEGs' size (ImageNet-like decode cost)


def _jpeg(image: np.ndarray, px: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).convert("RGB").resize((px, px), Image.BICUBIC).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def source_spec() -> DataSpec:
    """Fashion-MNIST where Debian's package installed it, else the bundled fashion-mini (its subset)."""
    full = DataSpec("fashion-mnist", None)
    return full if DEFAULT_DIRS["fashion-mnist"].is_dir() else DataSpec("fashion-mini", None)


def build_data(cache: Path, n_images: int, per_shard: int = 500) -> tuple[str, str]:
    """(imagefolder spec, webdataset spec) of the first n_images Fashion-MNIST training images as 224 px
    JPEGs (and a tenth as many for val/), written once under `cache`."""
    root = cache / f"{source_spec().kind}-{n_images}"
    folder, shards = root / "folder", root / "shards"
    done = root / "done"
    if not done.exists():
        ds = load_dataset(source_spec(), 0.1, 0)
        images, labels = ds.test.images, ds.test.labels  # any split: only the decode cost matters
        n_val = max(len(FASHION_CLASSES), n_images // 10)
        for split, lo, hi in (("train", 0, n_images), ("val", n_images, n_images + n_val)):
            samples = []
            for i in range(lo, hi):
                data, label = _jpeg(images[i % len(images)][0].numpy(), SOURCE_PX), int(labels[i % len(labels)])
                d = folder / split / f"class{label}"
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{i:06d}.jpg").write_bytes(data)
                samples.append((f"{i:06d}", data, label))
            (shards / split).mkdir(parents=True, exist_ok=True)
            for s in range(0, len(samples), per_shard):
                write_shard(shards / split / f"{split}-{s // per_shard:06d}.tar", samples[s : s + per_shard])
        done.write_text("ok\n")
    return f"imagefolder:{folder}", f"webdataset:{shards}"


DECODE = {"workers": "PIL in workers", "cuda": "nvJPEG on the GPU", "cpu": "torchvision on the CPU, one process"}


def make_paths(specs: dict[str, str], decoders: list[str], args) -> dict[str, Batches]:
    """One Batches per (data kind, decoder), over the training split with the training transform:
    `workers` decodes with PIL in the loader processes, a device name (cuda, cpu) decodes there."""
    paths = {}
    for kind, spec in specs.items():
        split = load_dataset(parse_data_spec(spec), 0.1, 0).train
        for decoder in decoders:
            b = Batches(split, args.batch_size, train=True, img_size=args.img_size, workers=args.workers)
            if decoder != "workers":
                b.decode_on(torch.device(decoder))
            paths[f"{kind}, {DECODE.get(decoder, decoder)}"] = b
    return paths


def time_round(batches: Batches, n_batches: int, device: str, epoch: int) -> float:
    """images/s over n_batches after the first (the first pays for starting the workers)."""
    batches.set_epoch(epoch)
    it = batches.iterate()
    next(it)
    t0, images = time.perf_counter(), 0
    for x, _ in itertools.islice(it, n_batches):
        images += len(x)
    if images == 0:
        raise ValueError(
            f"the training split has fewer than 2 batches of {batches.index.batch_size}; use more --images"
        )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    del it  # stops the workers
    return images / seconds


def measure(paths: dict[str, Batches], args) -> list[dict]:
    speeds: dict[str, list[float]] = {name: [] for name in paths}
    for r in range(args.rounds):
        for name, b in paths.items():
            device = b.decoder.device.type if b.decoder is not None else "cpu"
            speeds[name].append(time_round(b, args.batches, device, epoch=r))
    return [{"path": name, "images_per_s": round(max(v), 1), "images_per_s_median": round(statistics.median(v), 1),
             "rounds": [round(s, 1) for s in v]} for name, v in speeds.items()]  # fmt: skip


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000, help="training images written (224 px JPEGs)")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", default="auto", help="loader processes: N or auto")
    ap.add_argument("--batches", type=int, default=12, help="timed batches per path per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--decoders", default=None,
                    help="workers (PIL in the loader processes) and/or a device: cuda, cpu [default: workers,cuda "
                         "where CUDA is seen, else workers]")  # fmt: skip
    ap.add_argument("--cache", type=Path, default=Path("/tmp/lfcc-data-throughput"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    return ap


def run(args) -> dict:
    args.workers = resolve_workers(None if str(args.workers) == "auto" else int(args.workers))
    decoders = args.decoders.split(",") if args.decoders else ["workers"] + ["cuda"] * torch.cuda.is_available()
    folder, shards = build_data(args.cache, args.images)
    rows = measure(make_paths({"imagefolder": folder, "webdataset": shards}, decoders, args), args)
    gpu = torch.cuda.get_device_name() if "cuda" in decoders else None
    return {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "source": source_spec().kind, "cpu": cpu_name(), "cpus": usable_cpus(), "gpu": gpu,
        "torch": torch.__version__, "python": platform.python_version(), "rows": rows,
    }  # fmt: skip


def main() -> None:
    args = parser().parse_args()
    result = run(args)
    print(f"{args.images} Fashion-MNIST images as {SOURCE_PX} px JPEGs -> {args.img_size} px, batch "
          f"{args.batch_size}, {args.workers} worker(s), {result['cpu']}" + (f", {result['gpu']}" if result["gpu"]
          else ""))  # fmt: skip
    print("| path | images/s (fastest round) | median round |\n| --- | --- | --- |")
    for r in result["rows"]:
        print(f"| {r['path']} | {r['images_per_s']:,.0f} | {r['images_per_s_median']:,.0f} |")
    device = "cuda" if result["gpu"] else "cpu"
    record_result(args.out, f"{device}:{args.images}img:{args.img_size}px:b{args.batch_size}:w{args.workers}", result)


if __name__ == "__main__":
    main()
