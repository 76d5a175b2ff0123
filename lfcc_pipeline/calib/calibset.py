"""The calibration set: class-stratified images from the training split, saved as calib.npz.

calib.npz holds the images exactly as the evaluation loader yields them (uint8, before the float
conversion and resize that happen on the device), their labels, and a JSON `meta` record of how
they become model inputs (img_size, resize mode, crop, the student's mean/std, the data source).
`model_inputs` applies the same conversion as evaluation (data/transforms.py `to_float`) and the
normalisation of the model it feeds, so one file serves teacher and student even when their
normalisations differ, and it loads on a machine that has no copy of the dataset.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lfcc_pipeline.core.atomic import write_with
from lfcc_pipeline.core.errors import ConfigError, DataError
from lfcc_pipeline.core.preprocess import Preprocess
from lfcc_pipeline.data.transforms import Normalization, to_float

FORMAT = 1
_REDRAW = "rerun `lfcc-pipeline calibrate` without --calib-file to draw a matching set"


@dataclass(frozen=True)
class CalibSet:
    images: np.ndarray  # uint8 (N, 1|3, h, w), as the evaluation loader yields them
    labels: np.ndarray  # int64 (N,)
    img_size: int  # the model input size the images are resized to
    resize: str  # Preprocess.resize of the models it was drawn for: "stretch" | "center_crop"
    crop_pct: float
    mean: tuple[float, ...]  # the student's normalisation (used for models without lfcc metadata)
    std: tuple[float, ...]
    classes: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)  # data spec, fingerprint, split, seed

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "img_size": self.img_size,
            "resize": self.resize,
            "crop_pct": self.crop_pct,
            "mean": list(self.mean),
            "std": list(self.std),
            "classes": list(self.classes),
            "source": self.source,
            "conversion": "uint8/255, grayscale to 3 channels, bilinear antialiased resize to img_size, (x-mean)/std",
        }

    def per_class(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        names = self.classes or tuple(str(i) for i in range(len(counts)))
        return {names[i]: int(c) for i, c in enumerate(counts)}


def stratified_indices(
    labels: np.ndarray, num_classes: int, size: int, seed: int, classes: Sequence[str] | None = None
) -> np.ndarray:
    """`size` indices with every class represented as evenly as its images allow, shuffled, by seed.

    Raises DataError when a class has no images, ConfigError when `size` cannot be met.
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)[:num_classes]
    empty = [i for i in range(num_classes) if counts[i] == 0]
    if empty:
        names = [classes[i] if classes else str(i) for i in empty]
        raise DataError(
            f"class {', '.join(repr(n) for n in names[:5])} has no training images, so a class-stratified "
            "calibration set cannot represent it",
            "add images of that class to the training data (or remove the class)",
        )
    if size > int(counts.sum()):
        raise ConfigError(f"--calib-size {size} exceeds the {int(counts.sum())} training images", "lower --calib-size")
    if size < num_classes:
        raise ConfigError(
            f"--calib-size {size} is smaller than the {num_classes} classes; a class-stratified set needs "
            "at least one image per class",
            f"use --calib-size {num_classes} or more (512 is the default)",
        )
    rng = np.random.default_rng([seed, 0xCA1B])
    quota = _quotas(counts, size, rng)
    picked = [rng.permutation(np.flatnonzero(labels == c))[: quota[c]] for c in range(num_classes)]
    return rng.permutation(np.concatenate(picked))


def _quotas(counts: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Per-class counts summing to `size`: equal shares, capped by what each class has (water-filling)."""
    quota = np.zeros_like(counts)
    left = size
    open_ = list(range(len(counts)))
    while left > 0 and open_:
        share = left // len(open_)
        extra = left % len(open_)
        # extras go to the open classes with the fewest images so far (ties at random), keeping them level
        order = sorted(rng.permutation(open_).tolist(), key=lambda c: quota[c])
        lucky = set(order[:extra])
        still = []
        for c in open_:
            want = share + (1 if c in lucky else 0)
            take = min(want, counts[c] - quota[c])
            quota[c] += take
            left -= take
            if quota[c] < counts[c]:
                still.append(c)
        open_ = still
    return quota


def save_calibset(path: Path, cs: CalibSet) -> None:
    """Write calib.npz atomically (np.savez on an open file, so no `.npz` is appended to the temp name)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                images=np.ascontiguousarray(cs.images, dtype=np.uint8),
                labels=np.asarray(cs.labels, dtype=np.int64),
                meta=np.array(json.dumps(cs.meta())),
            )

    write_with(path, write)


def load_calibset(path: Path) -> CalibSet:
    """Read and check a calib.npz; DataError with what is wrong and what to do otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"calibration set {path} does not exist", "check the path or " + _REDRAW)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
            raise ValueError("a single array, not an .npz archive")
        with loaded as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path} is not a readable .npz file ({str(e)[:120]})", _REDRAW) from e
    missing = [k for k in ("images", "labels", "meta") if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}; it is not a calib.npz written by lfcc-pipeline", _REDRAW)
    try:
        meta = json.loads(str(arrays["meta"]))
        img_size = int(meta["img_size"])
        resize, crop_pct = str(meta["resize"]), float(meta["crop_pct"])
        mean, std = tuple(float(v) for v in meta["mean"]), tuple(float(v) for v in meta["std"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise DataError(f"{path} has no valid preprocessing record ({e})", _REDRAW) from e
    images, labels = arrays["images"], arrays["labels"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3) or len(images) == 0:
        raise DataError(
            f"{path} holds images of shape {images.shape} ({images.dtype}); expected uint8 (N, 1|3, H, W) with N >= 1",
            _REDRAW,
        )
    if labels.shape != (images.shape[0],):
        raise DataError(f"{path} has {labels.shape} labels for {images.shape[0]} images", _REDRAW)
    return CalibSet(
        images=images,
        labels=labels.astype(np.int64),
        img_size=img_size,
        resize=resize,
        crop_pct=crop_pct,
        mean=mean,
        std=std,
        classes=tuple(meta.get("classes", ())),
        source=dict(meta.get("source", {})),
    )


def model_inputs(
    cs: CalibSet,
    preprocess: Preprocess | None,
    input_shape: Sequence[Any] | None = None,
    model_name: str = "the model",
    origin: str = "calib.npz",
) -> np.ndarray:
    """float32 (N, 3, S, S) inputs for one model: the evaluation conversion + that model's mean/std.

    `preprocess` is the model's recorded contract (ONNX metadata `lfcc.preprocess`); its size and
    resize mode must match the set's. `input_shape` (the ONNX input's dims; strings or None for
    dynamic ones) is checked against the result.
    """
    if preprocess is not None:
        same = (
            preprocess.img_size == cs.img_size
            and preprocess.resize == cs.resize
            and math.isclose(preprocess.crop_pct, cs.crop_pct, abs_tol=1e-6)
        )
        if not same:
            raise DataError(
                f"{origin} was drawn for {cs.img_size} px inputs ({cs.resize}, crop {cs.crop_pct:g}) but "
                f"{model_name} expects {preprocess.img_size} px ({preprocess.resize}, crop {preprocess.crop_pct:g})",
                _REDRAW,
            )
        mean, std = preprocess.mean, preprocess.std
    else:
        mean, std = cs.mean, cs.std
    x = Normalization(tuple(mean), tuple(std))(to_float(torch.from_numpy(cs.images), cs.img_size))
    out = x.numpy().astype(np.float32, copy=False)
    if input_shape is not None and len(input_shape) == 4:
        for axis in (1, 2, 3):
            dim = input_shape[axis]
            if isinstance(dim, int) and dim > 0 and dim != out.shape[axis]:
                raise DataError(
                    f"{origin} gives inputs of shape {tuple(out.shape[1:])} but {model_name} takes "
                    f"{tuple(input_shape[1:])}",
                    _REDRAW,
                )
    elif input_shape is not None:
        raise DataError(f"{model_name} takes {len(input_shape)}-d inputs; calibration images are 4-d NCHW", _REDRAW)
    return out
