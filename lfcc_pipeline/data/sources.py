"""Load a dataset named by a DataSpec into train/val/test splits (deterministic by seed)."""

from __future__ import annotations

import functools
import hashlib
import logging
import socket
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from lfcc_pipeline.core.errors import DataError
from lfcc_pipeline.data.bad_images import header_problem
from lfcc_pipeline.data.idx import read_idx
from lfcc_pipeline.data.specs import DEFAULT_DIRS, DataSpec
from lfcc_pipeline.data.tar_shards import TarMember

_logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@dataclass(frozen=True)
class Split:
    """One split: in-memory uint8 images (N, C, H, W) at native resolution, or image files (paths, or
    TarMembers of webdataset shards)."""

    labels: torch.Tensor
    images: torch.Tensor | None = None
    files: tuple[Path | TarMember, ...] | None = None

    @property
    def in_shards(self) -> bool:
        """Images stored in tar shards (read shard by shard in training, each rank its own shards)."""
        return bool(self.files) and isinstance(self.files[0], TarMember)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: np.ndarray) -> Split:
        t = torch.as_tensor(idx, dtype=torch.long)
        return Split(
            labels=self.labels[t],
            images=None if self.images is None else self.images[t],
            files=None if self.files is None else tuple(self.files[i] for i in idx),
        )


@dataclass(frozen=True)
class Dataset:
    name: str
    classes: tuple[str, ...]
    train: Split
    val: Split
    test: Split
    fingerprint: str
    unreadable: tuple[tuple[Path, str], ...] = ()  # (file, why): image files left out of the splits

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_memory(self) -> bool:
        return self.train.images is not None

    def describe(self) -> dict:
        return {
            "spec": self.name,
            "classes": len(self.classes),
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "fingerprint": self.fingerprint,
        }


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (keep, holdout) with `fraction` of every class held out (>= 1 where possible)."""
    rng = np.random.default_rng(seed)
    keep, hold = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = int(round(fraction * len(idx)))
        n = min(max(n, 1), len(idx) - 1) if len(idx) > 1 else 0
        hold.append(idx[:n])
        keep.append(idx[n:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(hold))


def _array_split(images: np.ndarray, labels: np.ndarray) -> Split:
    x = torch.from_numpy(np.array(images, copy=True, order="C"))
    if x.ndim == 3:  # grayscale N,H,W -> N,1,H,W (expanded to 3 channels per batch)
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[-1] in (1, 3):  # N,H,W,C -> N,C,H,W
        x = x.permute(0, 3, 1, 2).contiguous()
    return Split(labels=torch.from_numpy(labels.astype(np.int64)), images=x)


def _hash_arrays(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _with_val(name, classes, train_x, train_y, test_x, test_y, val_fraction, seed) -> Dataset:
    keep, hold = stratified_holdout(train_y, val_fraction, seed)
    full = _array_split(train_x, train_y)
    return Dataset(
        name=name,
        classes=tuple(classes),
        train=full.subset(keep),
        val=full.subset(hold),
        test=_array_split(test_x, test_y),
        fingerprint=_hash_arrays(train_x, train_y, test_x, test_y),
    )


def _load_fashion_mini(val_fraction: float, seed: int) -> Dataset:
    path = resources.files("lfcc_pipeline.data") / "fashion_mini.npz"
    with resources.as_file(path) as p, np.load(p, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return _with_val(
        "fashion-mini",
        [str(c) for c in arrays["classes"]],
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
        val_fraction,
        seed,
    )


def _find_idx(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise DataError(
        f"{root} has no {stem}[.gz]",
        "install Debian's dataset-fashion-mnist package or pass fashion-mnist:DIR with the four IDX files",
    )


def _load_fashion_mnist(root: Path, val_fraction: float, seed: int) -> Dataset:
    if not root.is_dir():
        raise DataError(
            f"Fashion-MNIST directory {root} does not exist",
            "apt-get install dataset-fashion-mnist, pass fashion-mnist:DIR, or use --data fashion-mini",
        )
    arrays = [
        read_idx(_find_idx(root, f"{p}-{kind}-idx{d}-ubyte"))
        for p in ("train", "t10k")
        for kind, d in (("images", 3), ("labels", 1))
    ]
    train_x, train_y, test_x, test_y = arrays
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise DataError(f"image and label counts differ in {root}", "reinstall the dataset")
    return _with_val(f"fashion-mnist:{root}", FASHION_CLASSES, *arrays, val_fraction, seed)


def network_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _load_cifar100(root: Path, val_fraction: float, seed: int) -> Dataset:
    from torchvision.datasets import CIFAR100

    def load(download: bool):
        return [CIFAR100(str(root), train=t, download=download) for t in (True, False)]

    try:
        train, test = load(False)
    except RuntimeError:
        if not network_reachable("www.cs.toronto.edu"):
            raise DataError(
                f"CIFAR-100 is not under {root} and the network is unreachable",
                "pass --data fashion-mini (bundled) or a local copy as --data cifar100:DIR",
            ) from None
        _logger.info("downloading CIFAR-100 to %s", root)
        try:
            train, test = load(True)
        except (OSError, RuntimeError) as e:  # URLError, a refused or cut connection, a bad checksum
            raise DataError(
                f"CIFAR-100 is not under {root} and downloading it failed ({type(e).__name__}: {e})",
                "download it by hand into that directory and pass --data cifar100:DIR, or use --data fashion-mini",
            ) from e
    return _with_val(
        f"cifar100:{root}",
        train.classes,
        train.data,
        np.asarray(train.targets),
        test.data,
        np.asarray(test.targets),
        val_fraction,
        seed,
    )


@dataclass
class _Scan:
    """One split folder: its readable-looking files with labels, the unreadable ones, and what the
    fingerprint hashes (relative path, size and mtime of every file, in scan order)."""

    classes: list[str]
    files: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)
    stamps: list[str] = field(default_factory=list)


def _scan_folder(d: Path, classes: list[str] | None, root: Path) -> _Scan:
    if not d.is_dir():
        raise DataError(f"{d} is not a directory", "imagefolder:DIR needs DIR/train/<class>/ and DIR/val/<class>/")
    found = sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = found if classes is None else classes
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"{d} has classes not in train/: {', '.join(unknown[:5])}", "use the same class folders")
    scan = _Scan(classes)
    for i, c in enumerate(classes):
        if not (d / c).is_dir():
            continue
        for f in sorted((d / c).rglob("*")):
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                st = f.stat()
                scan.stamps.append(f"{f.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n")
                problem = header_problem(f, st.st_size)
                if problem is not None:
                    scan.bad.append((f, problem))
                    continue
                scan.files.append(f)
                scan.labels.append(i)
    return scan


def _load_imagefolder(root: Path, val_fraction: float, seed: int) -> Dataset:
    """DIR/train, DIR/val (and DIR/test); files that cannot be images (empty, another kind of file)
    are left out of the splits and listed in Dataset.unreadable."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist", "pass imagefolder:DIR with DIR/train and DIR/val")
    tr = _scan_folder(root / "train", None, root)
    classes = tr.classes
    if len(classes) < 2:
        raise DataError(f"{root / 'train'} has {len(classes)} class folder(s)", "a classifier needs at least 2")
    empty = [c for i, c in enumerate(classes) if i not in set(tr.labels)]
    if empty:
        raise DataError(
            f"class folder(s) without images in {root / 'train'}: {', '.join(empty[:5])}",
            f"add images or remove the folders (accepted: {', '.join(sorted(IMAGE_SUFFIXES))})",
        )
    va = _scan_folder(root / "val", classes, root)
    if not va.files:
        raise DataError(f"{root / 'val'} has no images", "put held-out images under DIR/val/<class>/")
    tr_y = np.asarray(tr.labels)
    full = Split(labels=torch.from_numpy(tr_y.astype(np.int64)), files=tuple(tr.files))
    val_split = Split(labels=torch.tensor(va.labels, dtype=torch.long), files=tuple(va.files))
    bad = tr.bad + va.bad
    if (root / "test").is_dir():
        te = _scan_folder(root / "test", classes, root)
        train, val = full, val_split
        test = Split(labels=torch.tensor(te.labels, dtype=torch.long), files=tuple(te.files))
        bad += te.bad
    else:  # DIR/val is the test split; validation is held out of train
        keep, hold = stratified_holdout(tr_y, val_fraction, seed)
        train, val, test = full.subset(keep), full.subset(hold), val_split
    h = hashlib.sha256("".join(tr.stamps + va.stamps).encode())
    return Dataset(f"imagefolder:{root}", tuple(classes), train, val, test, h.hexdigest()[:16], tuple(bad))


@functools.lru_cache(maxsize=4)
def load_dataset(spec: DataSpec, val_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """Load the dataset a spec names, with a stratified validation split chosen by `seed`."""
    if spec.kind == "fashion-mini":
        ds = _load_fashion_mini(val_fraction, seed)
    elif spec.kind == "fashion-mnist":
        ds = _load_fashion_mnist(spec.path or DEFAULT_DIRS["fashion-mnist"], val_fraction, seed)
    elif spec.kind == "cifar100":
        ds = _load_cifar100(spec.path or DEFAULT_DIRS["cifar100"], val_fraction, seed)
    elif spec.kind == "webdataset":
        # imported here: webdataset_source builds on this module's Split and Dataset
        from lfcc_pipeline.data.webdataset_source import load_webdataset

        ds = load_webdataset(spec, val_fraction, seed)
    else:
        assert spec.path is not None
        ds = _load_imagefolder(spec.path, val_fraction, seed)
    if min(len(ds.train), len(ds.val), len(ds.test)) == 0:
        raise DataError(f"dataset {spec} has an empty split", "it needs train, validation and test images")
    return ds
