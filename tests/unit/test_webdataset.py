"""webdataset: tar shards read back with their labels, shard patterns, rank sharding, --workers auto,
corrupt members (one line, or skipped with --skip-bad-images) and the device-side JPEG decode path."""

import io
import logging
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from lfcc_pipeline.cli_options import config_from_options
from lfcc_pipeline.core.config import DataConfig, RunConfig
from lfcc_pipeline.core.errors import DataError
from lfcc_pipeline.data.bad_images import SkippedImages
from lfcc_pipeline.data.device_decode import DeviceDecoder, Encoded
from lfcc_pipeline.data.loader import Batches
from lfcc_pipeline.data.run_data import dataset
from lfcc_pipeline.data.shard_order import ShardBatches
from lfcc_pipeline.data.shard_patterns import expand_braces, shard_files
from lfcc_pipeline.data.sources import load_dataset
from lfcc_pipeline.data.specs import parse_data_spec
from lfcc_pipeline.data.tar_shards import index_shard, split_key, write_shard
from lfcc_pipeline.data.workers import auto_workers, resolve_workers

SHADES = (30, 130, 230)  # class c is a flat image of grey level SHADES[c]


def _jpeg(shade: int, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 48, 3), shade, np.uint8)).save(buf, fmt)
    return buf.getvalue()


def _webdataset(root, train_shards=4, val_shards=2, per_shard=9):
    for split, n in (("train", train_shards), ("val", val_shards)):
        (root / split).mkdir(parents=True)
        for s in range(n):
            samples = [(f"{split}{s}_{i:03d}", _jpeg(SHADES[i % 3]), i % 3) for i in range(per_shard)]
            write_shard(root / split / f"{split}-{s:06d}.tar", samples)
    return root


def _cfg(spec, skip=False) -> RunConfig:
    return RunConfig(data=DataConfig(spec=spec, workers=0, skip_bad_images=skip))


def test_shards_read_back_with_their_labels(tmp_path):
    root = _webdataset(tmp_path / "wds")
    ds = load_dataset(parse_data_spec(f"webdataset:{root}"), 0.25, 0)
    assert ds.classes == ("0", "1", "2") and len(ds.test) == 18 and len(ds.train) + len(ds.val) == 36
    assert ds.train.in_shards and not ds.unreadable
    by_dir = load_dataset(parse_data_spec(f"webdataset:{root}/train/train-{{000000..000003}}.tar;{root}/val/*.tar"))
    assert by_dir.fingerprint == ds.fingerprint and len(by_dir.test) == 18
    for split in (ds.train, ds.test):
        for x, y in Batches(split, 6, train=False, img_size=32):
            # every decoded image has its class's grey level (JPEG keeps a flat image within a few levels)
            shade = x.float().mean(dim=(1, 2, 3))
            assert torch.allclose(shade, torch.tensor([float(SHADES[c]) for c in y]), atol=3), (shade, y)


def test_member_keys_and_brace_patterns(tmp_path):
    assert split_key("n014/abc_1.jpg") == ("n014/abc_1", "jpg")
    assert split_key("a.b/x.seg.PNG") == ("a.b/x", "seg.png")
    assert expand_braces("t-{08..11}.tar") == ["t-08.tar", "t-09.tar", "t-10.tar", "t-11.tar"]
    assert expand_braces("{a,b{1..2}}-{0..1}") == ["a-0", "a-1", "b1-0", "b1-1", "b2-0", "b2-1"]
    with pytest.raises(DataError, match="unclosed"):
        expand_braces("t-{0..3.tar")
    root = _webdataset(tmp_path / "wds")
    assert [p.name for p in shard_files(f"file://{root}/train/train-{{000000..000001}}.tar")] == [
        "train-000000.tar", "train-000001.tar"]  # fmt: skip
    with pytest.raises(DataError, match="does not exist") as e:  # 000004 is missing
        shard_files(f"{root}/train/train-{{000000..000004}}.tar")
    assert "train-000004.tar" in e.value.line()
    with pytest.raises(DataError, match="no tar shards match"):
        shard_files(f"{root}/nothing-*.tar")
    with pytest.raises(DataError, match="local files"):
        shard_files("https://example.com/train-{000..009}.tar")


def test_spec_forms_and_their_errors(tmp_path):
    root = _webdataset(tmp_path / "wds")
    assert parse_data_spec(f"webdataset:{root}").path == root
    spec = parse_data_spec("webdataset:/d/train-{0..9}.tar;/d/val-{0..1}.tar")
    assert spec.shards == ("/d/train-{0..9}.tar", "/d/val-{0..1}.tar")
    assert str(spec) == "webdataset:/d/train-{0..9}.tar;/d/val-{0..1}.tar"
    for bad, words in (("webdataset:", "needs a directory"), ("webdataset:/d/train-{0..9}.tar", "validation"),
                       ("webdataset:a;b;c;d", "2 or 3")):  # fmt: skip
        with pytest.raises(DataError, match=words):
            parse_data_spec(bad)
    with pytest.raises(DataError, match="no tar shards match"):  # checked when the data is loaded, before training
        dataset(_cfg(f"webdataset:{tmp_path}/none-{{0..3}}.tar;{root}/val/*.tar"))


def test_ranks_read_disjoint_shards_and_the_same_number_of_batches(tmp_path):
    # 5 shards of unequal size: rank 0 gets 3, rank 1 gets 2 in each epoch
    ids = np.repeat(np.arange(5), [10, 7, 12, 9, 6])
    ranks = [ShardBatches(ids, 8, seed=3, rank=r, world=2, window=5) for r in range(2)]
    for epoch in range(3):
        seen = []
        for b in ranks:
            b.set_epoch(epoch)
            batches = list(b)
            assert len(batches) == len(b) == 44 // 8 and all(len(x) == 4 for x in batches)
            shards = set(ids[np.concatenate(batches)])
            assert shards <= set(b.my_shards())  # reads only its own shards
            seen.append(set(b.my_shards()))
        assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(5))
    assert [list(x) for x in ranks[0]] == [list(x) for x in ranks[0]]  # deterministic (resume)
    ranks[0].set_epoch(0)
    first = [list(x) for x in ranks[0]]
    ranks[0].set_epoch(1)
    assert [list(x) for x in ranks[0]] != first  # a new order each epoch
    with pytest.raises(DataError, match="fewer than the 8 processes"):
        ShardBatches(ids, 8, world=8)


def test_training_batches_over_shards_stay_within_the_ranks_shards(tmp_path):
    root = _webdataset(tmp_path / "wds", train_shards=4)
    ds = load_dataset(parse_data_spec(f"webdataset:{root}"), 0.1, 0)
    got = []
    for rank in range(2):
        b = Batches(ds.train, 8, train=True, img_size=32, rank=rank, world=2)
        assert isinstance(b.index, ShardBatches) and not b.device_augment
        idx = np.concatenate(list(b.index))
        got.append({ds.train.files[i].shard for i in idx})
        assert sum(len(y) for _, y in b) == len(b) * 4
    assert not got[0] & got[1]


def test_workers_auto(caplog, monkeypatch):
    import lfcc_pipeline.data.workers as workers

    monkeypatch.setattr(workers, "_told", set())
    with caplog.at_level(logging.INFO, logger="lfcc_pipeline.data.workers"):
        n = resolve_workers(None)
        resolve_workers(None)
    assert n >= 1 and caplog.text.count(f"--workers auto -> {n} loader process(es)") == 1  # said once
    assert auto_workers(cpus=16, procs_per_node=1) == 15
    assert auto_workers(cpus=16, procs_per_node=8) == 1  # 2 CPUs per process: one worker each
    assert auto_workers(cpus=2, procs_per_node=1) == 1
    assert auto_workers(cpus=256, procs_per_node=1) == 32
    cfg = config_from_options({"workers": "auto"})
    assert cfg.data.workers is None and config_from_options({"workers": "6"}).data.workers == 6
    assert resolve_workers(3) == 3


def _with_member(path, name, payload):
    with tarfile.open(path, "a") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))


def test_an_empty_member_is_one_line_or_skipped(tmp_path):
    root = _webdataset(tmp_path / "wds")
    shard = root / "train" / "train-000001.tar"
    _with_member(shard, "bad_1.jpg", b"")
    _with_member(shard, "bad_1.cls", b"1")
    ix = index_shard(shard)
    assert len(ix.members) == 9 and ix.bad == [(type(shard)(f"{shard}:bad_1.jpg"), "empty file (0 bytes)")]
    with pytest.raises(DataError) as e:
        dataset(_cfg(f"webdataset:{root}"))
    line = e.value.line()
    assert "\n" not in line and f"{shard}:bad_1.jpg" in line and "--skip-bad-images" in line
    kept = dataset(_cfg(f"webdataset:{root}", skip=True))
    assert len(kept.train) + len(kept.val) == 36 and len(kept.unreadable) == 1  # the 36 good samples


def test_a_truncated_jpeg_member_is_found_when_decoded(tmp_path):
    root = _webdataset(tmp_path / "wds", train_shards=2, per_shard=6)
    shard = root / "train" / "train-000000.tar"
    _with_member(shard, "cut_0.jpg", _jpeg(30)[:40])  # a JPEG header, then nothing
    _with_member(shard, "cut_0.cls", b"0")
    ds = load_dataset(parse_data_spec(f"webdataset:{root}"), 0.01, 0)
    split = next(s for s in (ds.train, ds.val) if any(m.name == "cut_0.jpg" for m in s.files))
    assert not ds.unreadable  # its header looks like a JPEG's
    with pytest.raises(DataError, match="cut_0.jpg: cannot be decoded"):
        list(Batches(split, 13, train=False, img_size=32))
    skipped = SkippedImages()
    for decode_here in (False, True):
        b = Batches(split, 13, train=False, img_size=32, skipped=skipped)
        if decode_here:
            b.decode_on(torch.device("cpu"))
        assert sum(len(y) for _, y in b) == len(split) - 1
    assert len(skipped) == 1 and "cut_0.jpg" in skipped.line()


def test_an_unreadable_shard_is_named(tmp_path):
    root = _webdataset(tmp_path / "wds", train_shards=2)
    (root / "train" / "train-000002.tar").write_bytes(b"\x1f\x8b" + b"gzip, not tar" * 50)
    with pytest.raises(DataError, match="train-000002.tar: not a readable uncompressed tar archive"):
        dataset(_cfg(f"webdataset:{root}"))


def test_device_decode_matches_the_cpu_path_and_falls_back_to_pil(tmp_path):
    """The device path (here with the CPU JPEG decoder; nvJPEG on CUDA: tests/gpu) decodes the same images
    as PIL and applies the same transform; a PNG goes through PIL, a broken file comes back as unreadable."""
    from lfcc_pipeline.data.decode import file_transform

    items = [Encoded(torch.frombuffer(bytearray(_jpeg(s)), dtype=torch.uint8), f"j{s}") for s in SHADES]
    items.append(Encoded(torch.frombuffer(bytearray(_jpeg(90, "PNG")), dtype=torch.uint8), "png"))
    items.append(Encoded(torch.frombuffer(bytearray(b"\xff\xd8\xff\xe0garbage"), dtype=torch.uint8), "broken"))
    decoder = DeviceDecoder(torch.device("cpu"), file_transform(24, train=False))
    x, y, bad = decoder(items, torch.arange(5))
    assert x.shape == (4, 3, 24, 24) and x.dtype == torch.uint8 and y.tolist() == [0, 1, 2, 3]
    assert torch.allclose(x.float().mean(dim=(1, 2, 3)), torch.tensor([30.0, 130, 230, 90]), atol=3)
    assert decoder.fallbacks == 1 and [ref for ref, _ in bad] == ["broken"] and "cannot be decoded" in bad[0][1]
    root = _webdataset(tmp_path / "wds", train_shards=2)
    ds = load_dataset(parse_data_spec(f"webdataset:{root}"), 0.1, 0)
    cpu, dev = (Batches(ds.test, 6, train=False, img_size=32) for _ in range(2))
    dev.decode_on(torch.device("cpu"))
    for (xa, ya), (xb, yb) in zip(cpu, dev, strict=True):
        assert torch.equal(ya, yb) and (xa.int() - xb.int()).abs().max() <= 2  # two JPEG decoders, one transform
    torch.manual_seed(0)
    train = Batches(ds.train, 8, train=True, img_size=32)
    train.decode_on(torch.device("cpu"))
    x, _ = next(iter(train))
    assert x.shape == (8, 3, 32, 32)  # random resized crop + flip on the device path too
