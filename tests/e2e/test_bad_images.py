"""A zero-byte PNG in an image folder: one line and exit 2 before any training, or (--skip-bad-images)
a finished run that reports the skipped file in the stage's metrics.json."""

import json
from importlib import resources

import numpy as np
import pytest
from PIL import Image

from lfcc_pipeline.core.config import DataConfig, DistillConfig, ModelsConfig, RunConfig, TrainConfig
from lfcc_pipeline.pipeline.runner import run_pipeline
from tests.conftest import cli

pytestmark = pytest.mark.slow


@pytest.fixture
def folder(tmp_path):
    """fashion-mini images as PNGs under train/ and val/ (12 and 3 per class), plus one zero-byte PNG."""
    with resources.as_file(resources.files("lfcc_pipeline.data") / "fashion_mini.npz") as p, np.load(p) as z:
        images, labels = z["train_images"], z["train_labels"]
    root = tmp_path / "imgs"
    for c in range(10):
        idx = np.flatnonzero(labels == c)[:15]
        for j, i in enumerate(idx):
            d = root / ("train" if j < 12 else "val") / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(d / f"{i}.png")
    bad = root / "train" / "class3" / "zero.png"
    bad.write_bytes(b"")
    return root, bad


def test_zero_byte_png_is_one_line_and_exit_2_before_training(folder, tmp_path):
    root, bad = folder
    out = tmp_path / "run"
    r = cli("run", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd", "--target", "torch",
            "--data", f"imagefolder:{root}", "--img-size", "32", "--epochs", "1", "--teacher-epochs", "1",
            "--batch-size", "16", "--no-pretrained", "--out", str(out))  # fmt: skip
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == [f"error: unreadable image {bad}: empty file (0 bytes); remove or replace the file, "
                     "or pass --skip-bad-images to skip such files"]  # fmt: skip
    assert not (out / "teacher").exists()  # the pre-flight check stopped it, not the training loop


def _cfg(root, out) -> RunConfig:
    cfg = RunConfig(
        models=ModelsConfig(teacher="test_vit", student="test_resnet", img_size=32, pretrained=False),
        data=DataConfig(spec=f"imagefolder:{root}", workers=2),
        train=TrainConfig(epochs=1, teacher_epochs=1, batch_size=16, ckpt_every=2),
        distill=DistillConfig(method="kd"),
        out=out,
        device="cpu",
    )
    object.__setattr__(cfg.data, "skip_bad_images", True)  # the lead adds the field and --skip-bad-images
    return cfg


def test_skip_bad_images_finishes_and_counts_the_file(folder, tmp_path, caplog):
    root, bad = folder
    out = tmp_path / "run"
    caplog.set_level("INFO", logger="lfcc_pipeline")
    report = run_pipeline(_cfg(root, out), stop_after="distill")
    assert [s.action for s in report.stages] == ["ran", "ran"]
    for role in ("teacher", "student"):
        metrics = json.loads((out / role / "metrics.json").read_text())
        assert metrics["skipped_images"] == 1 and metrics["skipped_files"] == [str(bad)], role
    said = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert said == [
        f"{d}: skipped 1 unreadable image(s): {bad} (empty file (0 bytes))" for d in ("teacher", "distill[kd]")
    ]
    again = run_pipeline(_cfg(root, out), stop_after="distill")  # the same settings: both up to date
    assert [s.action for s in again.stages] == ["skipped", "skipped"]
