"""The MLflow tracker against a real local SQLite store (needs the `mlflow` extra: `make test-mlflow`)."""

import pytest

from lfcc_pipeline.core.config import ModelsConfig, RunConfig, TrackingConfig
from lfcc_pipeline.tracking.mlflow import RUN_FILE, mlflow_uri, open_mlflow

mlflow = pytest.importorskip("mlflow")


def _cfg(mlflow_setting="default", teacher="test_vit") -> RunConfig:
    return RunConfig(models=ModelsConfig(teacher=teacher), tracking=TrackingConfig(mlflow=mlflow_setting))


def _client(run_dir):
    return mlflow.tracking.MlflowClient(tracking_uri=mlflow_uri(_cfg(), run_dir))


def test_one_run_per_pipeline_run_with_the_config_as_params_and_no_step_twice(tmp_path):
    run_dir = tmp_path / "runs" / "tiny"
    assert mlflow_uri(_cfg(), run_dir) == f"sqlite:///{tmp_path / 'runs' / 'mlruns.db'}"
    t = open_mlflow(_cfg(), run_dir, "distill")
    for step in (1, 2, 3, 4, 5):
        t.scalars({"train/loss": 1.0 / step, "train/lr": 0.1}, step)
    t.close()  # "killed" after step 5; the checkpoint was at step 3
    resumed = open_mlflow(_cfg(), run_dir, "distill")
    for step in (4, 5, 6):
        resumed.scalars({"train/loss": 1.0 / step, "train/lr": 0.1}, step)
    resumed.close()
    client = _client(run_dir)
    runs = client.search_runs([client.get_experiment_by_name("lfcc-pipeline").experiment_id])
    assert len(runs) == 1 and runs[0].info.run_name == "tiny" and runs[0].info.status == "FINISHED"
    run_id = runs[0].info.run_id
    assert [m.step for m in client.get_metric_history(run_id, "distill/train/loss")] == [1, 2, 3, 4, 5, 6]
    assert runs[0].data.params["models.teacher"] == "test_vit" and runs[0].data.params["tracking.mlflow"] == "default"


def test_other_settings_start_another_mlflow_run(tmp_path):
    run_dir = tmp_path / "runs" / "tiny"
    open_mlflow(_cfg(), run_dir, "teacher").close()
    first = (run_dir / RUN_FILE).read_text()
    open_mlflow(_cfg(teacher="test_convnext"), run_dir, "teacher").close()
    assert (run_dir / RUN_FILE).read_text() != first
    client = _client(run_dir)
    assert len(client.search_runs([client.get_experiment_by_name("lfcc-pipeline").experiment_id])) == 2


def test_an_unreachable_server_is_one_warning_and_no_tracking(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    caplog.set_level("WARNING", logger="lfcc_pipeline")
    t = open_mlflow(_cfg("http://127.0.0.1:9"), tmp_path / "run", "distill")
    t.scalars({"train/loss": 1.0}, 1)
    t.close()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("warning: MLflow tracking to http://127.0.0.1:9 failed (")
    assert said[0].endswith("the run continues without it")
