"""`lfcc-pipeline compare`: one teacher, every (method, seed) through the pipeline, a report; run again,
every finished run is skipped."""

import json

import pytest

from tests.conftest import cli

pytestmark = pytest.mark.slow

ARGS = ["compare", "--teacher", "test_vit", "--student", "test_resnet", "--data", "fashion-mini", "--methods",
        "none,lfcc", "--seeds", "0", "--epochs", "1", "--teacher-epochs", "1", "--img-size", "32",
        "--train-subset", "640", "--batch-size", "64"]  # fmt: skip


def test_compare_writes_the_report_and_skips_finished_runs(tmp_path):
    out = tmp_path / "cmp"
    r = cli(*ARGS, "--out", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "compare" / "report.json").read_text())
    assert set(report["methods"]) == {"none", "lfcc"} and report["seeds"] == [0]
    for row in report["methods"].values():
        assert 0 <= row["test_mean"] <= 100 and row["runs"][0]["seed"] == 0 and row["seconds_per_run"] > 0
    assert report["methods"]["none"]["gain_over_student_alone"] == 0
    assert (out / "compare" / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert "| lfcc |" in r.stdout and "| none |" in (out / "compare" / "report.md").read_text()
    again = cli(*ARGS, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "skipped 2 finished run(s)" in again.stderr and "stage distill: running" not in again.stderr


def test_compare_checks_its_options_before_training(tmp_path):
    r = cli(*ARGS[:-2], "--methods", "none,magic", "--out", str(tmp_path / "c"))
    assert r.returncode == 2 and "unknown method 'magic'" in r.stderr
    assert not (tmp_path / "c").exists()
