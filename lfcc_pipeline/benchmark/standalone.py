"""`lfcc-pipeline bench --model A --model B --data SPEC`: benchmark deployable files on this device.

For a Jetson or GPU box that has the runtime but not the run directory: each --model is an ONNX
file (run by ONNX Runtime with --ort-provider), an OpenVINO IR .xml (with its .bin; run by
OpenVINO's CPU plugin: target ov-fp32 or ov-int8) or a TensorRT engine (with the JSON the build
step writes beside it). Preprocessing, labels and the model's role come from the metadata the
export embedded, so the report matches the pipeline's.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lfcc_pipeline.benchmark.session import EVAL_BATCH, Reference, numpy_preprocess, run_benchmark
from lfcc_pipeline.benchmark.suite import Candidate
from lfcc_pipeline.core.config import BenchConfig
from lfcc_pipeline.core.errors import ArtifactError, ConfigError, TargetUnavailable
from lfcc_pipeline.core.onnx_meta import preprocess_of, read_metadata
from lfcc_pipeline.core.preprocess import Preprocess
from lfcc_pipeline.data.transforms import Normalization

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFile:
    path: Path
    kind: str  # onnx | engine | ov
    role: str  # teacher | student
    name: str
    precision: str
    preprocess: Preprocess
    labels: list[str]
    params: int | None


def onnx_precision(path: Path) -> str:
    """int8 | fp16 | fp32 of an ONNX file (see calib.graph.precision)."""
    import onnx

    from lfcc_pipeline.calib.graph import precision

    return precision(onnx.load(str(path), load_external_data=False))


def describe_model(path: Path) -> ModelFile:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(
            f"model file {path} does not exist", "pass an .onnx, an OpenVINO .xml or a TensorRT .engine"
        )
    if path.suffix == ".onnx":
        try:
            meta, kind, precision = read_metadata(path), "onnx", onnx_precision(path)
        except Exception as e:  # onnx raises DecodeError and friends for non-ONNX files
            raise ArtifactError(f"{path} is not a readable ONNX file ({type(e).__name__})", "re-export it") from e
    elif path.suffix in (".engine", ".plan", ".trt"):
        from lfcc_pipeline.runtimes.trt_engine import read_engine_meta

        engine_meta = read_engine_meta(path)
        meta, kind, precision = engine_meta.get("metadata", {}), "engine", engine_meta.get("precision", "unknown")
    elif path.suffix == ".xml":
        from lfcc_pipeline.runtimes.ov_ir import ir_metadata, ir_precision, read_model

        model = read_model(path)
        meta, kind, precision = ir_metadata(model), "ov", ir_precision(model)
    else:
        raise ConfigError(f"cannot benchmark {path.name}", "pass .onnx, OpenVINO .xml or TensorRT .engine files")
    return ModelFile(
        path=path, kind=kind, role=meta.get("lfcc.role", "student"), name=meta.get("lfcc.model", path.stem),
        precision=precision, preprocess=preprocess_of(meta, path),
        labels=json.loads(meta.get("lfcc.labels", "[]")),
        params=int(meta["lfcc.params"]) if "lfcc.params" in meta else None,
    )  # fmt: skip


def _runner_factory(m: ModelFile, providers: list[str], threads: int | None, cuda_graph: bool):
    if m.kind == "engine":
        from lfcc_pipeline.runtimes.trt_runner import TrtRunner

        return functools.partial(TrtRunner, m.path, cuda_graph)
    if m.kind == "ov":
        from lfcc_pipeline.runtimes.ov_runner import OvRunner

        return functools.partial(OvRunner, m.path, m.precision, threads)
    from lfcc_pipeline.runtimes.ort_runner import OrtRunner

    return functools.partial(OrtRunner, m.path, m.precision, providers, threads)


def bench_files(
    paths: list[Path], data_spec: str, out_dir: Path, cfg: BenchConfig, provider: str = "cpu", cuda_graph: bool = False
) -> list[dict[str, Any]]:
    """Measure every model file on the test split of `data_spec`; write report.{json,md,png}."""
    from lfcc_pipeline.data.loader import Batches
    from lfcc_pipeline.data.sources import load_dataset
    from lfcc_pipeline.data.specs import parse_data_spec
    from lfcc_pipeline.runtimes.ort_providers import ort_providers

    models = [describe_model(p) for p in paths]
    engines = [m.path.name for m in models if m.kind == "engine"]
    if engines:
        from lfcc_pipeline.runtimes.trt_engine import import_tensorrt

        try:
            import_tensorrt()
        except TargetUnavailable as e:
            raise TargetUnavailable(f"cannot benchmark {', '.join(engines)}: {e.message}",
                                    "run bench on the machine the engines were built on") from e  # fmt: skip
    sizes = {m.preprocess.img_size for m in models}
    if len(sizes) != 1:
        raise ConfigError(f"the models expect different image sizes {sorted(sizes)}", "benchmark them separately")
    size = sizes.pop()
    ds = load_dataset(parse_data_spec(data_spec), 0.1, 0)
    labels = {tuple(m.labels) for m in models if m.labels}
    if labels and len(ds.classes) != len(next(iter(labels))):
        raise ConfigError(f"the models predict {len(next(iter(labels)))} classes, {data_spec} has {ds.num_classes}",
                          "benchmark on the dataset the models were trained for")  # fmt: skip
    providers = ort_providers(provider) if any(m.kind == "onnx" for m in models) else []
    cands = []
    for m in models:
        runtime = {"engine": "trt", "onnx": "ort"}.get(m.kind, m.kind)
        cands.append(Candidate(
            m.role, m.name, f"{runtime}-{m.precision}", runtime, m.precision,
            _runner_factory(m, providers, cfg.threads, cuda_graph),
            numpy_preprocess(Normalization(m.preprocess.mean, m.preprocess.std)),
            m.path.stat().st_size / 1e6, (m.params or 0) / 1e6, note=m.path.name,
        ))  # fmt: skip

    def reference_of(data) -> Reference:
        logits, name = _teacher_reference(models, cands, data)
        return Reference(logits, {"agreement_reference": name})

    rows, _ = run_benchmark(
        cands,
        ds,
        size,
        lambda split: Batches(split, EVAL_BATCH, train=False, img_size=size),
        reference_of,
        cfg,
        out_dir,
        info={"ort_providers": providers},
        need_a_row=True,
    )  # against an FP32 file of the same role, where one was given
    return rows


def _teacher_reference(models, cands, data) -> tuple[torch.Tensor | None, str | None]:
    """(logits, file name) of the teacher that agreement is measured against: the most precise teacher
    given (FP32 before FP16 before INT8, ONNX before an engine), or (None, None) without one."""
    rank = {"fp32": 0, "fp16": 1, "int8": 2}
    teachers = sorted(
        (i for i, m in enumerate(models) if m.role == "teacher"),
        key=lambda i: (rank.get(models[i].precision, 3), models[i].kind != "onnx"),
    )
    for i in teachers:
        try:
            runner = cands[i].make_runner()
            logits = torch.cat([torch.from_numpy(runner(cands[i].preprocess(raw))) for raw, _ in data()])
            return logits, models[i].path.name
        except Exception as e:  # its own row will carry the error; try the next teacher
            _logger.warning("agreement: the teacher %s failed (%s)", models[i].path.name, e)
    return None, None
