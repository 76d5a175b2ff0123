"""The calibration set: stratified sampling, calib.npz round trip, and mismatches caught with one line."""

import dataclasses

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lfcc_pipeline.calib.calibset import (
    CalibSet,
    load_calibset,
    model_inputs,
    save_calibset,
    stratified_indices,
)
from lfcc_pipeline.cli import cli
from lfcc_pipeline.core.config import CalibConfig, RunConfig
from lfcc_pipeline.core.errors import ConfigError, DataError
from lfcc_pipeline.core.preprocess import Preprocess
from lfcc_pipeline.data.transforms import Normalization, to_float


def _set(n=20, size=32, shape=(1, 28, 28)) -> CalibSet:
    rng = np.random.default_rng(0)
    return CalibSet(
        images=rng.integers(0, 256, (n, *shape), dtype=np.uint8),
        labels=np.arange(n) % 10,
        img_size=size,
        resize="stretch",
        crop_pct=1.0,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        classes=tuple(f"c{i}" for i in range(10)),
        source={"data": "test"},
    )


def test_stratified_sample_is_balanced_shuffled_and_seeded():
    labels = np.repeat(np.arange(10), 100)
    idx = stratified_indices(labels, 10, 512, seed=0)
    assert len(idx) == 512 and len(set(idx.tolist())) == 512
    counts = np.bincount(labels[idx], minlength=10)
    assert counts.min() >= 51 and counts.max() <= 52  # 512 = 10 x 51 + 2
    assert not np.all(np.diff(labels[idx]) >= 0)  # classes mixed across batches, not sorted
    assert np.array_equal(idx, stratified_indices(labels, 10, 512, seed=0))
    assert not np.array_equal(idx, stratified_indices(labels, 10, 512, seed=1))


def test_small_classes_give_what_they_have_and_the_rest_fill_up():
    labels = np.concatenate([np.zeros(3, int), np.ones(100, int), np.full(100, 2)])
    idx = stratified_indices(labels, 3, 60, seed=0)
    assert np.bincount(labels[idx], minlength=3).tolist() in ([3, 29, 28], [3, 28, 29])


def test_empty_class_is_a_data_error_naming_it():
    labels = np.array([0, 0, 2, 2, 2])
    with pytest.raises(DataError, match="'Trouser' has no training images"):
        stratified_indices(labels, 3, 3, seed=0, classes=["T-shirt", "Trouser", "Pullover"])


@pytest.mark.parametrize("size, match", [(5, "smaller than the 10 classes"), (2000, "exceeds the 1000 training")])
def test_impossible_sizes_are_config_errors(size, match):
    with pytest.raises(ConfigError, match=match):
        stratified_indices(np.repeat(np.arange(10), 100), 10, size, seed=0)


def test_round_trip_keeps_images_labels_and_preprocessing(tmp_path):
    cs = _set()
    save_calibset(tmp_path / "calib.npz", cs)
    assert [p.name for p in tmp_path.iterdir()] == ["calib.npz"]  # no temp file or doubled suffix left
    back = load_calibset(tmp_path / "calib.npz")
    assert np.array_equal(back.images, cs.images) and np.array_equal(back.labels, cs.labels)
    assert (back.img_size, back.resize, back.crop_pct, back.mean, back.std) == (32, "stretch", 1.0, cs.mean, cs.std)
    assert back.classes == cs.classes and back.per_class() == {f"c{i}": 2 for i in range(10)}


def test_model_inputs_are_exactly_the_evaluation_preprocessing():
    cs = _set()
    pre = Preprocess(img_size=32, mean=(0.2, 0.3, 0.4), std=(0.5, 0.6, 0.7))
    x = model_inputs(cs, pre, ["batch", 3, 32, 32])
    ref = Normalization(pre.mean, pre.std)(to_float(torch.from_numpy(cs.images), 32)).numpy()
    assert x.dtype == np.float32 and x.shape == (20, 3, 32, 32)
    assert np.array_equal(x, ref)  # the model's own mean/std, not the stored student's
    assert np.array_equal(
        model_inputs(cs, None, None), Normalization(cs.mean, cs.std)(to_float(torch.from_numpy(cs.images), 32)).numpy()
    )


@pytest.mark.parametrize(
    "pre, shape, match",
    [
        (Preprocess(img_size=64, mean=(0.5,) * 3, std=(0.5,) * 3), None, "drawn for 32 px inputs .* expects 64 px"),
        (
            Preprocess(img_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, resize="center_crop", crop_pct=0.875),
            None,
            "center_crop",
        ),
        (None, [1, 3, 48, 48], r"shape \(3, 32, 32\) but .* takes \(3, 48, 48\)"),
        (None, [1, 1, 32, 32], "takes"),
        (None, [1, 32, 32], "3-d inputs"),
    ],
)
def test_mismatched_model_is_one_clear_data_error(pre, shape, match):
    with pytest.raises(DataError, match=match) as e:
        model_inputs(_set(), pre, shape, model_name="export/student.onnx")
    assert "\n" not in e.value.line() and "calibrate" in e.value.line()


def test_bad_files_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_calibset(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_calibset(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataError, match="lacks images, labels, meta"):
        load_calibset(tmp_path / "other.npz")
    cs = dataclasses.replace(_set(), images=np.zeros((4, 28, 28), np.uint8), labels=np.zeros(4, int))
    save_calibset(tmp_path / "flat.npz", cs)
    with pytest.raises(DataError, match=r"shape \(4, 28, 28\)"):
        load_calibset(tmp_path / "flat.npz")


@pytest.mark.parametrize(
    "calib, match",
    [
        (CalibConfig(size=16), "--calib-size 16 is smaller than one calibration batch"),
        (CalibConfig(method="minmax"), "--calib-method"),
        (CalibConfig(tool="tensorrt"), "--calib-tool"),
        (CalibConfig(max_int8_drop=-1), "--max-int8-drop"),
        (CalibConfig(percentile=10), "--calib-percentile"),
    ],
)
def test_calib_options_are_validated(calib, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig(calib=calib).validate()


BASE = ["run", "--data", "fashion-mini", "--teacher", "test_vit", "--student", "test_resnet", "--method", "kd"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--target", "ort-int8", "--calib-size", "8", "--calib-batch", "16"], "smaller than one calibration batch"),
        (["--target", "ort-int8", "--calib-method", "kl"], "unknown --calib-method"),
        (
            ["--target", "ort-int8", "--calib-file", "/no/such/calib.npz"],
            "--calib-file /no/such/calib.npz does not exist",
        ),
        (["--target", "ort-fp16", "--max-int8-drop", "-0.5"], "--max-int8-drop"),
    ],
)
def test_bad_calib_flags_are_one_line(args, words, tmp_path):
    r = CliRunner().invoke(cli, [*BASE, *args, "--out", str(tmp_path / "run")])
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert lines[0].startswith("error: ") and words in lines[0] and "Traceback" not in r.output


def test_calibrate_command_has_help_with_an_example():
    r = CliRunner().invoke(cli, ["calibrate", "--help"])
    assert r.exit_code == 0 and "Example" in r.output and "--calib-method" in r.output and "--max-int8-drop" in r.output


def test_quotas_stay_level_among_classes_with_images_left():
    from lfcc_pipeline.calib.calibset import _quotas

    rng = np.random.default_rng(0)
    for _ in range(2000):
        counts = rng.integers(0, 30, size=int(rng.integers(2, 8)))
        size = int(rng.integers(1, counts.sum() + 1))
        quota = _quotas(counts, size, rng)
        assert quota.sum() == size and np.all(quota <= counts)
        uncapped = quota[quota < counts]
        if uncapped.size:  # a class short of images gets all it has; the others differ by at most one
            assert quota.max() - uncapped.min() <= 1


def test_truncated_corrupt_and_npy_files_are_data_errors(tmp_path):
    save_calibset(tmp_path / "good.npz", _set())
    blob = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(blob[: len(blob) // 2])
    flipped = bytearray(blob)
    flipped[len(blob) // 3] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    np.save(tmp_path / "array.npy", np.zeros(3))
    for name in ("truncated.npz", "flipped.npz", "array.npy"):
        with pytest.raises(DataError, match="is not a readable .npz file|lacks|shape|labels|preprocessing"):
            load_calibset(tmp_path / name)
