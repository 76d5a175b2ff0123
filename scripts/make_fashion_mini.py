"""Build the bundled fashion-mini subset from Debian's `dataset-fashion-mnist` package.

    apt-get install dataset-fashion-mnist
    python scripts/make_fashion_mini.py  # writes lfcc_pipeline/data/fashion_mini.npz

A class-stratified random subset (seed 0): 600 images per class from the official training
set and 200 per class from the official test set, 28x28 uint8, with the class names.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from lfcc_pipeline.data.idx import read_idx
from lfcc_pipeline.data.sources import FASHION_CLASSES

SRC = Path("/usr/share/datasets/fashion-mnist")
DST = Path(__file__).resolve().parents[1] / "lfcc_pipeline" / "data" / "fashion_mini.npz"


def stratified(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(picks))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--out", type=Path, default=DST)
    ap.add_argument("--train-per-class", type=int, default=600)
    ap.add_argument("--test-per-class", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    arrays = {}
    for split, prefix, n in (("train", "train", args.train_per_class), ("test", "t10k", args.test_per_class)):
        x = read_idx(args.src / f"{prefix}-images-idx3-ubyte.gz")
        y = read_idx(args.src / f"{prefix}-labels-idx1-ubyte.gz")
        idx = stratified(y, n, rng)
        arrays[f"{split}_images"] = x[idx]
        arrays[f"{split}_labels"] = y[idx]
    np.savez_compressed(args.out, classes=np.array(FASHION_CLASSES), **arrays)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()[:16]
    sizes = {k: v.shape for k, v in arrays.items()}
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, sha256 {digest}) {sizes}")


if __name__ == "__main__":
    main()
