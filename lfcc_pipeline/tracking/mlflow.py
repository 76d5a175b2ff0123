"""MLflow tracking (optional: the `mlflow` extra): one MLflow run per pipeline run, in a local SQLite
store next to the runs (sqlite:///<runs>/mlruns.db) or on a tracking server.

The run directory remembers its MLflow run (mlflow.json), so every stage, a resumed stage and a
stage command log into the same MLflow run; settings that differ from those the MLflow run was made
with start a new one (MLflow parameters cannot change). Metrics are the TensorBoard scalars, keyed
`<stage>/<tag>` by global step; a resumed stage skips the steps the MLflow run already has, so no
step is logged twice. This module imports no torch (the bundle stage uses it)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from lfcc_pipeline.core.atomic import write_json
from lfcc_pipeline.core.config import RunConfig, as_dict
from lfcc_pipeline.tracking.base import Guarded, Tracker, warn_untracked

RUN_FILE = "mlflow.json"
EXPERIMENT = "lfcc-pipeline"
DEFAULT = "default"  # --mlflow without a URI


def mlflow_uri(cfg: RunConfig, run_dir: Path) -> str | None:
    """The tracking URI --mlflow asks for (None: off); bare --mlflow: a SQLite file beside the run directory."""
    value = cfg.tracking.mlflow
    if value in (None, False):
        return None
    if value in (True, "", DEFAULT):
        return f"sqlite:///{Path(run_dir).resolve().parent / 'mlruns.db'}"
    return str(value)


def params_of(cfg: RunConfig) -> dict[str, str]:
    """The resolved configuration, flattened (`train.optim.lr` -> "0.001"), as MLflow parameters."""
    out: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)

    walk("", as_dict(cfg))
    return out


class MlflowTracker(Tracker):
    def __init__(self, cfg: RunConfig, run_dir: Path, uri: str, stage: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        self.stage = stage
        self.run_id = self._run(cfg, Path(run_dir), uri)
        self.logged = self._last_steps()

    def _run(self, cfg: RunConfig, run_dir: Path, uri: str) -> str:
        """The pipeline run's MLflow run: the one mlflow.json names (same store, same settings), else a new one."""
        params = params_of(cfg)
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
        known = run_dir / RUN_FILE
        if known.is_file():
            saved = json.loads(known.read_text())
            if saved.get("tracking_uri") == uri and saved.get("config") == digest:
                self.client.update_run(saved["run_id"], status="RUNNING")
                return saved["run_id"]
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        if exp is None:
            where = None
            if uri.startswith("sqlite:///"):  # artifacts beside the database, not in the current directory
                where = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
            exp_id = self.client.create_experiment(EXPERIMENT, artifact_location=where)
        else:
            exp_id = exp.experiment_id
        run = self.client.create_run(exp_id, run_name=run_dir.name, tags={"lfcc.run_dir": str(run_dir.resolve())})
        self._log_params(run.info.run_id, params)
        write_json(known, {"tracking_uri": uri, "run_id": run.info.run_id, "config": digest})
        return run.info.run_id

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
            self.client.log_batch(run_id, params=items[i : i + 100])

    def _last_steps(self) -> dict[str, int]:
        """The last step of each of this stage's metrics the run already has (from an interrupted process)."""
        keys = [k for k in self.client.get_run(self.run_id).data.metrics if k.startswith(f"{self.stage}/")]
        return {k: max(m.step for m in self.client.get_metric_history(self.run_id, k)) for k in keys}

    def scalars(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        fresh = [(f"{self.stage}/{k}", float(v)) for k, v in values.items()]
        metrics = [Metric(k, v, now, step) for k, v in fresh if step > self.logged.get(k, -1)]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)
            self.logged.update({m.key: step for m in metrics})

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self.client.log_text(self.run_id, text, f"{tag}.md")

    def image(self, tag: str, path: Path, step: int = 0) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=str(Path(tag).parent))

    def artifact(self, path: Path, under: str = "") -> None:
        if Path(path).is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path=under or None)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path=under or None)

    def close(self) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED")


def open_mlflow(cfg: RunConfig, run_dir: Path, stage: str) -> Tracker:
    """The pipeline run's MLflow run for `stage`, guarded; a plain Tracker when --mlflow is off, or (after
    one warning line) when MLflow is not installed or the store cannot be reached."""
    uri = mlflow_uri(cfg, run_dir)
    if uri is None:
        return Tracker()
    what = f"MLflow tracking to {uri}"
    try:
        return Guarded(MlflowTracker(cfg, run_dir, uri, stage), what)
    except ImportError as e:
        warn_untracked(what, ImportError(f"{e}; pip install 'lfcc-pipeline[mlflow]'"))
    except Exception as e:  # an unreachable server, a locked or foreign database
        warn_untracked(what, e)
    return Tracker()
