"""A whole run with MLflow tracking into a real local SQLite store, read back through MLflow's own client
(needs the `mlflow` extra: `make test-mlflow`)."""

import pytest

from lfcc_pipeline.core.config import (
    BenchConfig,
    DataConfig,
    DistillConfig,
    ModelsConfig,
    RunConfig,
    TrackingConfig,
    TrainConfig,
)
from lfcc_pipeline.pipeline.runner import run_pipeline

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.slow


def _cfg(out) -> RunConfig:
    cfg = RunConfig(
        models=ModelsConfig(teacher="test_vit", student="test_resnet", img_size=32, pretrained=False),
        data=DataConfig(spec="fashion-mini", train_subset=640),
        train=TrainConfig(epochs=1, teacher_epochs=1, batch_size=64),
        distill=DistillConfig(method="kd"),
        bench=BenchConfig(targets=("torch", "ort-fp32"), iters=5, warmup=2, max_images=256),
        out=out,
        device="cpu",
        tracking=TrackingConfig(mlflow="default"),  # --mlflow
    )
    return cfg


def test_mlflow_client_lists_the_run_with_params_metrics_and_artifacts(tmp_path):
    out = tmp_path / "runs" / "tiny"
    run_pipeline(_cfg(out))
    run_pipeline(_cfg(out))  # a rerun (every stage up to date) stays the same MLflow run
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlruns.db'}")
    runs = client.search_runs([client.get_experiment_by_name("lfcc-pipeline").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["models.teacher"] == "test_vit" and run.data.params["distill.method"] == "kd"
    assert run.data.params["train.batch_size"] == "64"
    for key in ("teacher/train/loss", "distill/train/loss", "distill/train/loss_kd", "distill/val/top1",
                "distill/perf/images_per_s"):  # fmt: skip
        assert key in run.data.metrics, key
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "distill/train/loss")]
    assert steps == [10]  # 640 images / 64: one logging step, at the epoch's end, once
    top1 = client.get_metric_history(run.info.run_id, "distill/val/top1")
    assert len(top1) == 1 and 0 <= top1[0].value <= 100

    def files(path=None):
        found = []
        for f in client.list_artifacts(run.info.run_id, path):
            found += files(f.path) if f.is_dir else [f.path]
        return found

    artifacts = set(files())
    assert {"bench/report.json", "bench/report.md", "bench/report.png"} <= artifacts
    assert {"bundle/student.onnx", "bundle/labels.json", "bundle/preprocess.json"} <= artifacts
    assert (tmp_path / "runs" / "mlartifacts").is_dir()  # beside the database, not in the working directory
