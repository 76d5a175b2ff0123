"""Table-driven bad input over every CLI option: one line, non-zero exit, no traceback, and the
finished run next to it keeps every artifact."""

import shutil

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from lfcc_pipeline.cli import cli
from tests.conftest import FAST, record, verify_artifacts

GOOD = ["--teacher", "test_vit", "--student", "test_resnet", "--method", "kd", "--target", "torch", *FAST]


class _Evil:
    def __reduce__(self):
        return (print, ("this pickle ran code",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "notes.txt").write_text("not weights")
    torch.save({"w": _Evil()}, d / "evil.pt")
    from lfcc_pipeline.models.factory import create_model

    cnn, _ = create_model("test_resnet", 10, 32)
    save_file({k: v.contiguous() for k, v in cnn.state_dict().items()}, str(d / "resnet.safetensors"))
    (d / "empty" / "train").mkdir(parents=True)
    (d / "empty" / "val").mkdir()
    for split in ("train", "val"):
        (d / "oneclass" / split / "cat").mkdir(parents=True)
        from PIL import Image

        Image.new("RGB", (8, 8)).save(d / "oneclass" / split / "cat" / "a.png")
    (d / "afile").write_text("x")
    from lfcc_pipeline.data.tar_shards import write_shard

    png = (d / "oneclass" / "train" / "cat" / "a.png").read_bytes()
    for split in ("train", "val"):
        (d / "wds_empty_member" / split).mkdir(parents=True)
        samples = [(f"ok_{i}", png, i % 2) for i in range(4)] + [("bad_0", b"", 0)]
        write_shard(d / "wds_empty_member" / split / "000.tar", samples, image_ext="jpg")
    (d / "unknown_key.yaml").write_text("train:\n  epoch: 3\n")
    (d / "bad_type.yaml").write_text("train:\n  epochs: three\n")
    (d / "bad_value.yaml").write_text("distill:\n  methods:\n    lfcc: {dim: 0}\n")
    return d


def _openvino_rows() -> list[tuple[str, str, str]]:
    """OpenVINO targets that cannot run here: all of them without the extra, ov-fp16 on CPUs without native FP16."""
    from lfcc_pipeline.runtimes.ov_install import cpu_capabilities, openvino_version

    if openvino_version() is None:
        return [("--target", "ov-int8", "needs OpenVINO; pip install"), ("--target", "ov-fp16", "needs OpenVINO")]
    return [] if "FP16" in cpu_capabilities() else [("--target", "ov-fp16", "needs a CPU with native FP16")]


# (option, bad value, words the one error line must contain)
MATRIX = [
    ("--teacher", "vit_nonexistent", "unknown model"),
    ("--student", "resnet19", "unknown model"),
    ("--method", "magic", "unknown --method"),
    ("--target", "trt-fp64", "unknown --target"),
    ("--target", "trt-fp16", "TensorRT"),
    ("--data", "mnist", "unknown data spec"),
    ("--data", "fashion-mnist:/no/such/dir", "does not exist"),
    ("--data", "imagefolder:{files}/empty", "class folder"),
    ("--data", "imagefolder:{files}/oneclass", "at least 2"),
    ("--data", "imagefolder:", "empty directory"),
    ("--data", "webdataset:{files}/nowds/train-{{0..3}}.tar;{files}/nowds/val.tar", "no tar shards match"),
    ("--data", "webdataset:{files}/afile", "validation shards"),
    ("--data", "webdataset:https://host/train-{{0..3}}.tar;https://host/val.tar", "must be local files"),
    ("--data", "webdataset:{files}/wds_empty_member", "bad_0.jpg: empty file"),
    ("--out", "{files}/afile/run", "cannot"),
    ("--epochs", "-1", "--epochs"),
    ("--epochs", "three", "not a valid integer"),
    ("--teacher-epochs", "-2", "--teacher-epochs"),
    ("--img-size", "0", "--img-size"),
    ("--img-size", "40", "cannot take 40x40"),
    ("--batch-size", "0", "--batch-size"),
    ("--batch-size", "100000", "exceeds"),
    ("--device", "tpu", "--device"),
    ("--device", "cuda", "CUDA"),
    ("--seed", "abc", "not a valid integer"),
    ("--teacher-weights", "/no/such/file.pt", "does not exist"),
    ("--teacher-weights", "{files}/notes.txt", "cannot read"),
    ("--teacher-weights", "{files}/evil.pt", "refused"),
    ("--teacher-weights", "{files}/resnet.safetensors", "does not fit"),
    ("--lr", "0", "--lr"),
    ("--teacher-lr", "-1", "--teacher-lr"),
    ("--student-lr", "0", "--student-lr"),
    ("--student-weights", "/no/such/student.safetensors", "does not exist"),
    ("--log-every", "0", "--log-every"),
    ("--optimizer", "adam", "--optimizer"),
    ("--weight-decay", "-0.1", "--weight-decay"),
    ("--warmup-epochs", "-1", "--warmup-epochs"),
    ("--label-smoothing", "1.5", "--label-smoothing"),
    ("--grad-clip", "0", "--grad-clip"),
    ("--schedule", "linear", "--schedule"),
    ("--step-epochs", "0", "--step-epochs"),
    ("--preset", "mnist", "--preset"),
    ("--precision", "fp8", "--precision"),
    ("--ckpt-every", "0", "--ckpt-every"),
    ("--workers", "-1", "--workers"),
    ("--workers", "many", "neither a number nor auto"),
    ("--val-fraction", "1.5", "--val-fraction"),
    ("--train-subset", "0", "--train-subset"),
    ("--train-subset", "5", "smaller than the 10 classes"),
    ("--ce-weight", "-1", "--ce-weight"),
    ("--kd-weight", "-1", "--kd-weight"),
    ("--kd-temperature", "0", "--kd-temperature"),
    ("--lfcc-weight", "-1", "--lfcc-weight"),
    ("--lfcc-stages", "3-1", "TEACHER:STUDENT"),
    ("--lfcc-num-stages", "0", "--lfcc-num-stages"),
    ("--lfcc-scales", "a,b", "comma-separated"),
    ("--lfcc-scales", "0", "--lfcc-scales"),
    ("--lfcc-dim", "0", "--lfcc-dim"),
    ("--lfcc-temperature", "0", "--lfcc-temperature"),
    ("--lfcc-filter", "box", "--lfcc-filter"),
    ("--lfcc-blur-sizes", "0", "--lfcc-blur-sizes"),
    ("--lfcc-blur-grid", "0", "--lfcc-blur-grid"),
    ("--lfcc-proj-depth", "0", "--lfcc-proj-depth"),
    ("--lfcc-proj-hidden", "-1", "--lfcc-proj-hidden"),
    ("--lfcc-queue", "-1", "--lfcc-queue"),
    ("--lfcc-warmup-epochs", "-1", "--lfcc-warmup-epochs"),
    ("--ofa-weight", "-1", "--ofa-weight"),
    ("--ofa-eps", "0.5", "--ofa-eps"),
    ("--ofa-temperature", "0", "--ofa-temperature"),
    ("--ofa-stages", "x", "comma-separated"),
    ("--cakd-pca-weight", "-1", "--cakd-pca-weight"),
    ("--cakd-gl-weight", "-1", "--cakd-gl-weight"),
    ("--cakd-adv-weight", "-1", "--cakd-adv-weight"),
    ("--cakd-replace-prob", "1.5", "--cakd-replace-prob"),
    ("--cakd-taps", "1:2,3:4", "one TEACHER:STUDENT pair"),
    ("--tas-nce-weight", "-1", "--tas-nce-weight"),
    ("--tas-dim", "0", "--tas-dim"),
    ("--tas-temperature", "0", "--tas-temperature"),
    ("--tas-split", "x", "TEACHER:STUDENT"),
    ("--rsd-weight", "-1", "--rsd-weight"),
    ("--rsd-kappa", "2", "--rsd-kappa"),
    ("--rsd-gamma", "0", "--rsd-gamma"),
    ("--rsd-logit-weight", "-1", "--rsd-logit-weight"),
    ("--opset", "9", "--opset"),
    ("--exporter", "tflite", "--exporter"),
    ("--bench-iters", "0", "--bench-iters"),
    ("--bench-warmup", "-1", "--bench-warmup"),
    ("--bench-batch", "0", "--bench-batch"),
    ("--bench-max-images", "0", "--bench-max-images"),
    ("--threads", "0", "--threads"),
    ("--ort-provider", "tpu", "--ort-provider"),
    ("--stop-after", "deploy", "deploy"),
    ("--calib-size", "0", "--calib-size"),
    ("--calib-size", "8", "smaller than one calibration batch"),
    ("--calib-batch", "0", "--calib-batch"),
    ("--calib-method", "minmax", "--calib-method"),
    ("--calib-percentile", "101", "--calib-percentile"),
    ("--calib-tool", "tensorrt", "--calib-tool"),
    ("--calib-file", "/no/such/calib.npz", "does not exist"),
    ("--calib-eval-images", "0", "--calib-eval-images"),
    ("--max-int8-drop", "-1", "--max-int8-drop"),
    ("--sensitivity-images", "0", "--sensitivity-images"),
    ("--sensitivity-layers", "0", "--sensitivity-layers"),
    ("--mixed-max-layers", "-1", "--mixed-max-layers"),
    ("--dla-core", "-1", "--dla-core"),
    ("--min-batch", "0", "--min-batch"),
    ("--opt-batch", "0", "--opt-batch"),
    ("--max-batch", "0", "--max-batch"),
    ("--workspace", "-5", "--workspace"),
    ("--timing-cache", "{files}", "is a directory"),
    ("--config", "/no/such/config.yaml", "does not exist"),
    ("--config", "{files}/unknown_key.yaml", "train.epoch: unknown key"),
    ("--config", "{files}/bad_type.yaml", "train.epochs: expected an integer, got 'three'"),
    ("--config", "{files}/bad_value.yaml", "distill.methods.lfcc.dim: --lfcc-dim must be > 0"),
    *_openvino_rows(),
]
METHOD_SPECIFIC = {"--lfcc-stages": "lfcc", "--lfcc-num-stages": "lfcc", "--ofa-stages": "ofa", "--cakd-taps": "cakd",
                   "--tas-split": "tas"}  # fmt: skip
EXTRA = [
    ("--lfcc-stages", "99:1", "out of range", "lfcc"),
    ("--ofa-stages", "99", "out of range", "ofa"),
    ("--cakd-taps", "99:1", "out of range", "cakd"),
    ("--tas-split", "1:99", "out of range", "tas"),
]
CALIB_EXTRA = [  # only read when the calibrate stage runs
    ("--calib-file", "{files}/notes.txt", "not a readable .npz"),
]


@pytest.fixture(scope="module")
def finished(finished_run, tmp_path_factory):
    dst = tmp_path_factory.mktemp("matrix") / "run"
    shutil.copytree(finished_run, dst)
    return dst


def _check(args, words, run_dir):
    r = CliRunner().invoke(cli, args)
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code != 0, r.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], r.output
    assert "Traceback" not in r.output
    verify_artifacts(run_dir)
    record("bad inputs tried")


@pytest.mark.parametrize("option, value, words", MATRIX, ids=[f"{o}={v}" for o, v, _ in MATRIX])
def test_bad_value(option, value, words, files, finished):
    value = value.format(files=files)
    base = list(GOOD)
    if option in METHOD_SPECIFIC:
        base[base.index("--method") + 1] = METHOD_SPECIFIC[option]
    out = [] if option == "--out" else ["--out", str(finished)]
    _check(["run", *base, *out, option, value], words, finished)


@pytest.mark.parametrize("option, value, words, method", EXTRA)
def test_bad_method_tap_index(option, value, words, method, finished):
    base = list(GOOD)
    base[base.index("--method") + 1] = method
    _check(["run", *base, "--out", str(finished), option, value], words, finished)


@pytest.mark.parametrize("option, value, words", CALIB_EXTRA)
def test_bad_calibration_file(option, value, words, files, finished):
    value = value.format(files=files)
    base = list(GOOD)
    base[base.index("--target") + 1] = "ort-int8"
    _check(["run", *base, "--out", str(finished), option, value], words, finished)


def test_the_matrix_covers_every_run_option():
    """A new option must get a row here (flags without a value are exempt)."""
    run = cli.commands["run"]
    value_options = {o for p in run.params if not p.is_flag and p.param_type_name == "option" for o in p.opts}
    # --mlflow URI: MLflow itself judges a tracking URI, and tracking never fails a run (one warning line)
    covered = {o for o, _, _ in MATRIX} | {"--mlflow"}
    assert value_options - covered == set(), f"no bad-input row for {sorted(value_options - covered)}"
