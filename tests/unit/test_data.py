import gzip
import struct

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from lfcc_pipeline.core.errors import DataError
from lfcc_pipeline.data.idx import read_idx
from lfcc_pipeline.data.loader import Batches, IndexBatches
from lfcc_pipeline.data.sources import load_dataset, stratified_holdout
from lfcc_pipeline.data.specs import KINDS, DataSpec, parse_data_spec
from lfcc_pipeline.data.transforms import augment, batch_generator, to_float


@pytest.mark.parametrize(
    "spec, kind, path",
    [("fashion-mini", "fashion-mini", None), ("fashion-mnist", "fashion-mnist", None),
     ("fashion-mnist:/d", "fashion-mnist", "/d"), ("cifar100:/x/y", "cifar100", "/x/y"),
     ("imagefolder:/imgs", "imagefolder", "/imgs"), (" CIFAR100 ", "cifar100", None)],
)  # fmt: skip
def test_parse_valid_specs(spec, kind, path):
    s = parse_data_spec(spec)
    assert s.kind == kind and (str(s.path) if s.path else None) == path


@pytest.mark.parametrize("spec", ["mnist", "imagefolder", "fashion-mini:/x", "cifar100:", "", "cifar10"])
def test_parse_invalid_specs(spec):
    with pytest.raises(DataError):
        parse_data_spec(spec)


@given(st.text(max_size=40))
def test_parse_never_crashes(text):
    try:
        s = parse_data_spec(text)
    except DataError as e:
        assert e.line()
    else:
        assert s.kind in KINDS


@given(st.lists(st.integers(0, 4), min_size=2, max_size=200), st.floats(0.05, 0.5), st.integers(0, 2**16))
def test_stratified_holdout_partitions_every_class(labels, fraction, seed):
    y = np.asarray(labels)
    keep, hold = stratified_holdout(y, fraction, seed)
    assert sorted(np.concatenate([keep, hold]).tolist()) == list(range(len(y)))
    for c in np.unique(y):
        if (y == c).sum() > 1:  # every class with >= 2 samples keeps one for training and holds one out
            assert (y[hold] == c).any() and (y[keep] == c).any()
    k2, h2 = stratified_holdout(y, fraction, seed)
    assert np.array_equal(keep, k2) and np.array_equal(hold, h2)


def test_fashion_mini_splits_are_deterministic_by_seed():
    a = load_dataset(DataSpec("fashion-mini", None), 0.1, 0)
    b = load_dataset(DataSpec("fashion-mini", None), 0.1, 1)
    assert a.num_classes == 10 and a.classes[9] == "Ankle boot"
    assert (len(a.train), len(a.val), len(a.test)) == (5400, 600, 2000)
    assert a.train.images.dtype == torch.uint8 and a.train.images.shape[1:] == (1, 28, 28)
    assert not torch.equal(a.val.labels, b.val.labels) or not torch.equal(a.val.images, b.val.images)
    assert torch.bincount(a.val.labels).tolist() == [60] * 10


def _write_idx(path, arr):
    header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_from_a_directory(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    ds = load_dataset(parse_data_spec(f"fashion-mnist:{tmp_path}"), 0.25, 0)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 10, 20)


def test_truncated_idx_is_a_data_error(tmp_path):
    p = tmp_path / "x-idx1-ubyte"
    p.write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 100) + b"\0" * 10)
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)


def test_missing_directories_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(parse_data_spec(f"fashion-mnist:{tmp_path / 'nope'}"), 0.1, 0)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(parse_data_spec(f"imagefolder:{tmp_path / 'nope'}"), 0.1, 0)


def _folder(root, classes, per_class, split="train"):
    for c in classes:
        d = root / split / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("L" if i % 2 else "RGB", (20 + i, 16), color=i * 10).save(d / f"{i}.png")


def test_imagefolder_loads_and_batches(tmp_path):
    _folder(tmp_path, ["cat", "dog"], 6)
    _folder(tmp_path, ["cat", "dog"], 2, "val")
    ds = load_dataset(parse_data_spec(f"imagefolder:{tmp_path}"), 0.2, 0)
    assert ds.classes == ("cat", "dog") and not ds.in_memory
    assert len(ds.test) == 4 and len(ds.train) + len(ds.val) == 12
    x, y = next(iter(Batches(ds.train, 4, train=True, img_size=24)))
    assert x.dtype == torch.uint8 and tuple(x.shape) == (4, 3, 24, 24)


def test_imagefolder_with_one_class_or_an_empty_class(tmp_path):
    _folder(tmp_path / "one", ["cat"], 3)
    with pytest.raises(DataError, match="at least 2"):
        load_dataset(parse_data_spec(f"imagefolder:{tmp_path / 'one'}"), 0.2, 0)
    _folder(tmp_path / "empty", ["cat"], 3)
    (tmp_path / "empty" / "train" / "dog").mkdir()
    with pytest.raises(DataError, match="without images"):
        load_dataset(parse_data_spec(f"imagefolder:{tmp_path / 'empty'}"), 0.2, 0)


def test_index_batches_shard_and_are_seeded():
    a = [b.tolist() for b in IndexBatches(10, 3, shuffle=True, drop_last=False, seed=1)]
    assert a == [b.tolist() for b in IndexBatches(10, 3, shuffle=True, drop_last=False, seed=1)]
    assert sorted(sum(a, [])) == list(range(10))
    single = [b.tolist() for b in IndexBatches(10, 4, True, True, seed=1)]
    ranks = [[b.tolist() for b in IndexBatches(10, 4, True, True, seed=1, rank=r, world=2)] for r in (0, 1)]
    assert len(single) == len(ranks[0]) == len(ranks[1]) == 2  # steps per epoch do not depend on world size
    for step, batch in enumerate(single):  # rank slices of step k make up the single-process batch k
        assert ranks[0][step] + ranks[1][step] == batch
    evals = [sum((b.tolist() for b in IndexBatches(7, 2, False, False, rank=r, world=2)), []) for r in (0, 1)]
    assert sorted(evals[0] + evals[1]) == list(range(7))  # evaluation: every image once, no padding


def test_augment_slices_of_a_global_batch_match_the_whole():
    x = torch.rand(8, 3, 16, 16)
    whole = augment(x, batch_generator(torch.device("cpu"), 0, 0, 5))
    halves = [augment(x[i : i + 4], batch_generator(torch.device("cpu"), 0, 0, 5), offset=i, total=8) for i in (0, 4)]
    assert torch.equal(torch.cat(halves), whole)


def test_to_float_grayscale_to_rgb_and_resize():
    x = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    y = to_float(x, 32)
    assert y.shape == (2, 3, 32, 32) and torch.allclose(y, torch.ones_like(y))


def test_augment_is_a_shift_or_flip_seeded_by_step():
    x = torch.rand(8, 3, 16, 16)
    a = augment(x, batch_generator(torch.device("cpu"), 0, 1, 2))
    b = augment(x, batch_generator(torch.device("cpu"), 0, 1, 2))
    c = augment(x, batch_generator(torch.device("cpu"), 0, 1, 3))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # every output pixel is an input pixel (an exact crop/flip, no interpolation)
    assert torch.isin(a, x).all()


@pytest.mark.parametrize("reachable", [False, True])
def test_cifar100_missing_offline_or_failed_download_is_one_error(tmp_path, monkeypatch, reachable):
    """Offline: the error says to use fashion-mini or a local copy; a download that fails (here a refused
    connection, whatever the real network does) is a DataError too, never an internal error."""
    import torchvision.datasets

    from lfcc_pipeline.data import sources

    def no_download(self, *a, **k):
        raise OSError("connection refused")

    monkeypatch.setattr(sources, "network_reachable", lambda *a, **k: reachable)
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "download", no_download)
    with pytest.raises(DataError) as e:
        load_dataset(DataSpec("cifar100", str(tmp_path)))
    assert ("downloading it failed" if reachable else "network is unreachable") in e.value.line()
    assert "fashion-mini" in e.value.line()
