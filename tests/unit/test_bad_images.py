"""Unreadable image files: one line naming the file, or skipped and counted with --skip-bad-images."""

import numpy as np
import pytest
import torch
from PIL import Image

from lfcc_pipeline.core.config import DataConfig, RunConfig
from lfcc_pipeline.core.errors import DataError
from lfcc_pipeline.data.bad_images import SkippedImages, header_problem
from lfcc_pipeline.data.loader import Batches
from lfcc_pipeline.data.run_data import dataset
from lfcc_pipeline.data.sources import load_dataset
from lfcc_pipeline.data.specs import parse_data_spec


def _folder(root, per_class=4):
    for split, n in (("train", per_class), ("val", 2)):
        for c in ("cat", "dog"):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((12, 12, 3), 20 * i, np.uint8)).save(d / f"{i}.png")
    return root


def _cfg(root, skip: bool | None = None) -> RunConfig:
    return RunConfig(data=DataConfig(spec=f"imagefolder:{root}", workers=0, skip_bad_images=bool(skip)))


def test_header_check(tmp_path):
    _folder(tmp_path)
    png = tmp_path / "train" / "cat" / "0.png"
    assert header_problem(png, png.stat().st_size) is None
    disguised = tmp_path / "png_named.jpg"  # PIL decodes by content: a PNG named .jpg is fine
    disguised.write_bytes(png.read_bytes())
    assert header_problem(disguised, disguised.stat().st_size) is None
    (tmp_path / "e.png").write_bytes(b"")
    assert header_problem(tmp_path / "e.png", 0) == "empty file (0 bytes)"
    (tmp_path / "t.jpg").write_text("<html>404</html>")
    assert "not an image" in header_problem(tmp_path / "t.jpg", 16)


def test_zero_byte_png_fails_the_dataset_with_one_line_or_is_left_out(tmp_path):
    root = _folder(tmp_path / "imgs")
    bad = root / "train" / "dog" / "empty.png"
    bad.write_bytes(b"")
    ds = load_dataset(parse_data_spec(f"imagefolder:{root}"), 0.25, 0)
    assert ds.unreadable == ((bad, "empty file (0 bytes)"),)
    assert bad not in (*ds.train.files, *ds.val.files, *ds.test.files) and len(ds.train) + len(ds.val) == 8
    for cfg in (_cfg(root), _cfg(root, skip=False)):
        with pytest.raises(DataError) as e:
            dataset(cfg)
        line = e.value.line()
        assert "\n" not in line and str(bad) in line and "--skip-bad-images" in line and "empty file" in line
    assert len(dataset(_cfg(root, skip=True)).train) == len(ds.train)


def _truncated_png(path):
    full = (path.parent / "0.png").read_bytes()
    path.write_bytes(full[: len(full) // 2])  # a valid header, then cut off: only decoding finds it


@pytest.mark.parametrize("workers", [0, 2])
def test_undecodable_file_in_a_worker_is_one_line_not_a_dataloader_traceback(tmp_path, workers):
    root = _folder(tmp_path)
    bad = root / "train" / "cat" / "broken.png"
    _truncated_png(bad)
    ds = load_dataset(parse_data_spec(f"imagefolder:{root}"), 0.25, 0)
    split = ds.train if bad in ds.train.files else ds.val
    with pytest.raises(DataError) as e:
        list(Batches(split, 2, train=False, img_size=16, workers=workers))
    line = e.value.line()
    assert "\n" not in line and str(bad) in line and "cannot be decoded" in line and "worker" not in line


@pytest.mark.parametrize("workers", [0, 2])
def test_skipped_files_are_left_out_of_their_batch_and_recorded(tmp_path, workers):
    root = _folder(tmp_path)
    bad = root / "train" / "cat" / "broken.png"
    _truncated_png(bad)
    ds = load_dataset(parse_data_spec(f"imagefolder:{root}"), 0.25, 0)
    split = ds.train if bad in ds.train.files else ds.val
    skipped = SkippedImages()
    got = list(Batches(split, len(split), train=False, img_size=16, workers=workers, skipped=skipped))
    assert sum(len(y) for _, y in got) == len(split) - 1
    assert list(skipped.files) == [bad] and skipped.line().startswith("skipped 1 unreadable image(s): ")
    assert skipped.metrics()["skipped_images"] == 1
    # a training batch where nothing decodes keeps its place (empty), so batch positions stay exact
    only_bad = split.subset(np.array([list(split.files).index(bad)]))
    assert [len(y) for _, y in Batches(only_bad, 1, train=True, img_size=16, skipped=skipped)] == [0]


def test_skipped_record_counts_each_file_once_and_lists_the_first_few():
    s = SkippedImages()
    for i in range(5):
        s.add(f"/d/{i}.png", "empty file (0 bytes)")
        s.add(f"/d/{i}.png", "again")
    assert len(s) == 5 and s.line().endswith("and 2 more") and "/d/0.png (empty file (0 bytes))" in s.line()


def test_an_interrupted_run_keeps_counting_the_files_it_skipped_before(tmp_path, monkeypatch):
    """The record travels in the checkpoint: the resumed run never meets the file again, yet reports it."""
    import contextlib

    from lfcc_pipeline.core.config import DistillConfig, OptimConfig
    from lfcc_pipeline.data.loader import IndexBatches
    from lfcc_pipeline.data.sources import Split
    from lfcc_pipeline.methods.none import NoDistillation
    from lfcc_pipeline.models.factory import create_model, normalization
    from lfcc_pipeline.training.loop import FitSpec, fit

    root = _folder(tmp_path / "imgs", per_class=6)
    bad = root / "train" / "cat" / "broken.png"
    _truncated_png(bad)
    files = sorted((root / "train").rglob("*.png"))  # 13: 6 per class and the broken one
    labels = torch.tensor([int(f.parent.name == "dog") for f in files])
    train = Split(labels=labels[:12], files=tuple(files[:12]))
    val = Split(labels=labels[-4:], files=tuple(files[-4:]))
    where = files.index(bad)
    seed = next(s for s in range(50) if where in next(iter(IndexBatches(12, 4, True, True, seed=s))))  # batch 0

    real = torch.optim.AdamW.step

    def run(raise_after: int | None):
        torch.manual_seed(0)
        student, _ = create_model("test_resnet", 2, 32)
        spec = FitSpec(1, 1e-3, OptimConfig(), "fp32", 1, seed, tmp_path / "last.pt", "fp", desc="t")
        tr = Batches(train, 4, True, 32, seed=seed, skipped=SkippedImages())
        va = Batches(val, 4, False, 32, skipped=SkippedImages())
        calls = {"n": 0}

        def step(self, *a, **k):
            calls["n"] += 1
            if raise_after is not None and calls["n"] > raise_after:
                raise KeyboardInterrupt
            return real(self, *a, **k)

        monkeypatch.setattr(torch.optim.AdamW, "step", step)
        with contextlib.suppress(KeyboardInterrupt):
            result = fit(NoDistillation(student, None, DistillConfig()), tr, va, 32, normalization(student), None,
                         torch.device("cpu"), spec)  # fmt: skip
            return result, tr.skipped
        return None, tr.skipped

    _, first = run(raise_after=1)  # batch 0 (with the bad file) trained and checkpointed, then killed
    assert list(first.files) == [bad]
    result, resumed = run(raise_after=None)
    assert result.resumed_from_step == 1 and list(resumed.files) == [bad]
