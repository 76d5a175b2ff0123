"""A whole run on webdataset shards (fashion-mini as JPEGs in tar shards): teacher, distill, export and
bench read the shards; a pattern matching no shards stops with one line before any training."""

import io
import json
from importlib import resources

import numpy as np
import pytest
from PIL import Image

from lfcc_pipeline.data.tar_shards import write_shard
from tests.conftest import cli

pytestmark = pytest.mark.slow

COMMON = ["--teacher", "test_vit", "--student", "test_resnet", "--method", "kd", "--target", "ort-fp32",
          "--img-size", "32", "--epochs", "1", "--teacher-epochs", "1", "--batch-size", "16", "--no-pretrained",
          "--workers", "auto", "--bench-iters", "3", "--bench-warmup", "1"]  # fmt: skip


@pytest.fixture
def shards(tmp_path):
    """fashion-mini: 40 train images per class in 4 train shards, 8 per class in 1 val shard."""
    with resources.as_file(resources.files("lfcc_pipeline.data") / "fashion_mini.npz") as p, np.load(p) as z:
        images, labels = z["train_images"], z["train_labels"]
    picked = {split: [] for split in ("train", "val")}
    for c in range(10):
        idx = np.flatnonzero(labels == c)[:48]
        picked["train"] += list(idx[:40])
        picked["val"] += list(idx[40:])
    root = tmp_path / "wds"
    for split, n in (("train", 4), ("val", 1)):
        (root / split).mkdir(parents=True)
        for s, part in enumerate(np.array_split(np.array(picked[split]), n)):
            samples = []
            for i in part:
                buf = io.BytesIO()
                Image.fromarray(images[i]).save(buf, "JPEG", quality=95)
                samples.append((f"{i:05d}", buf.getvalue(), labels[i]))
            write_shard(root / split / f"{split}-{s:03d}.tar", samples)
    return root


def test_run_on_shards(shards, tmp_path):
    out = tmp_path / "run"
    spec = f"webdataset:{shards}/train/train-{{000..003}}.tar;{shards}/val/val-000.tar"
    r = cli("run", *COMMON, "--data", spec, "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "--workers auto -> " in r.stderr
    metrics = json.loads((out / "student" / "metrics.json").read_text())
    assert metrics["test_top1"] > 20  # 10 classes: well above chance after one epoch each
    report = json.loads((out / "bench" / "report.json").read_text())
    assert {row["target"] for row in report["rows"]} == {"ort-fp32"}
    assert json.loads((out / "export" / "parity.json").read_text())["student"]["ok"]


def test_a_pattern_matching_no_shards_is_one_line_before_training(shards, tmp_path):
    out = tmp_path / "run"
    r = cli("run", *COMMON, "--data", f"webdataset:{shards}/train/train-9{{0..3}}.tar;{shards}/val/*.tar",
            "--out", str(out))  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"error: no tar shards match '{shards}/train/train-9{{0..3}}.tar'; pass webdataset:DIR (DIR/train/*.tar, "
        "DIR/val/*.tar) or quoted patterns, e.g. 'webdataset:/data/train-{000..146}.tar;/data/val-{000..006}.tar'"
    ]
    assert not (out / "teacher").exists()
