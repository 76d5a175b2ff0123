"""--config FILE: a run's config.yaml reads back to the same RunConfig; flags win over the file, the
file wins over a preset; every bad file is one ConfigError line naming the file and the key."""

from pathlib import Path

import pytest

from lfcc_pipeline.cli import run_cmd
from lfcc_pipeline.cli_options import config_from_context, full_defaults, method_options
from lfcc_pipeline.core.config_file import dump_config, load_config_file
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.core.options import replace_at


def _changed():
    cfg = full_defaults()
    for path, value in [(("train", "epochs"), 3), (("bench", "targets"), ("torch", "ort-int8")),
                        (("distill", "methods", "lfcc", "scales"), (1, 2)), (("out",), Path("runs/x")),
                        (("distill", "methods", "lfcc", "stages"), ((3, 1), (-1, -1))), (("calib", "file"), None),
                        (("train", "optim", "grad_clip"), 5.0), (("models", "pretrained"), False)]:  # fmt: skip
        cfg = replace_at(cfg, path, value)
    return cfg


def test_written_config_reads_back_equal(tmp_path):
    cfg = _changed()
    f = tmp_path / "config.yaml"
    f.write_text(dump_config(cfg, "0.1.0", f))
    back, paths = load_config_file(f, full_defaults(), method_options())
    assert back == cfg
    assert ("train", "epochs") in paths and ("distill", "methods", "lfcc", "scales") in paths


def _resolve(args):
    ctx = run_cmd.make_context("run", list(args))
    with ctx:
        return config_from_context(ctx.params)


def test_flags_win_over_the_file_and_the_file_over_the_preset(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 3\n  optim: {lr: 0.2}\ndistill:\n  methods:\n    lfcc: {scales: '1,2'}\n")
    cfg = _resolve(["--config", str(f), "--epochs", "5", "--preset", "cifar100", "--student", "resnet18"])
    assert cfg.train.epochs == 5  # the flag
    assert cfg.train.optim.lr == 0.2  # the file, not the preset's 0.05
    assert cfg.train.batch_size == 128 and cfg.train.optim.optimizer == "sgd"  # the preset where neither sets it
    assert cfg.distill.options("lfcc").scales == (1, 2)  # the command line's spelling works in a file too


@pytest.mark.parametrize(
    "text, words",
    [
        ("- 1\n- 2\n", "the file: expected a mapping"),
        ("distill:\n  methods:\n    magic: {x: 1}\n", "distill.methods.magic: unknown method"),
        ("bench:\n  targets: [torch, trt-fp64]\n", "bench.targets: unknown --target 'trt-fp64'"),
        ("train: {epochs: 1.5}\n", "train.epochs: expected an integer"),
        ("models: {pretrained: yes please}\n", "models.pretrained: expected true or false"),
        ("train: [1, 2\n", "not valid YAML at line"),
        ("data: {val_fraction: 2}\n", "data.val_fraction: --val-fraction must be in (0, 1)"),
    ],
)
def test_bad_files_are_one_line_naming_file_and_key(tmp_path, text, words):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config_file(f, full_defaults(), method_options())
    assert words in e.value.line() and str(f) in e.value.line() and "\n" not in e.value.line()
