"""ONNX Runtime's own INT8 options for the CPU flavour (ort-int8), measured side by side (issue 15, item 4).

ResNet18 and deit_small at 224 px (timm, random weights, 1000 classes), 64 fashion-mini calibration
images, batch 1, 2 threads. Variants: our CPU flavour (U8S8 Q/DQ, per-channel, no reduce_range, graph
optimisation ORT_ENABLE_ALL, spinning on) and one change at a time: QOperator format, per-tensor weights,
reduce_range, ORT_ENABLE_EXTENDED, session.intra_op.allow_spinning 0. All variants are timed in
interleaved rounds in one process; agreement = top-1 agreement with the FP32 model on 64 other images.

    python benchmarks/ort_int8_options.py [--rounds 5] [--models resnet18 deit_small]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ort_int8_options.json"
VARIANTS = {  # name: (quantizer overrides, session overrides)
    "ours (QDQ, per-channel, ENABLE_ALL, spinning)": ({}, {}),
    "QOperator": ({"quant_format": "QOperator"}, {}),
    "per-tensor weights": ({"per_channel": False}, {}),
    "reduce_range": ({"reduce_range": True}, {}),
    "ORT_ENABLE_EXTENDED": ({}, {"level": "ORT_ENABLE_EXTENDED"}),
    "allow_spinning 0": ({}, {"spinning": "0"}),
}


def quantize(src: Path, dst: Path, calib: np.ndarray, quant_format: str = "QDQ", per_channel=True, reduce_range=False):
    """Our CPU flavour (calib/qdq.py's settings), with one option changed."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from lfcc_pipeline.calib import graph, qdq

    pre = dst.with_suffix(".pre.onnx")
    qdq._pre_process(src, pre)
    present = {n.op_type for n in graph.load(pre).graph.node}
    op_types = qdq.cpu_op_types(present)
    extra = {"ActivationSymmetric": False, "WeightSymmetric": True, "CalibStridedMinMax": 1}
    if op_types is not None:
        extra.update(
            OpTypesToExcludeOutputQuantization=["MatMul", "Gemm"], QDQOpTypePerChannelSupportToAxis={"MatMul": 1}
        )
    reader = qdq.ArrayReader(graph.input_info(graph.load(pre))[0], calib, 16, f"quantize {dst.name}")
    quantize_static(str(pre), str(dst), reader, quant_format=getattr(QuantFormat, quant_format),
                    op_types_to_quantize=op_types, nodes_to_exclude=qdq.transformer_excludes(graph.load(pre)),
                    per_channel=per_channel, reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=qdq._ort_method("max"), extra_options=extra)  # fmt: skip
    reader.close()


class Session:
    """An ONNX Runtime CPU session with the options under test (the Runner interface measure.latency needs)."""

    runtime, device, max_batch = "ort", "cpu", None

    def __init__(self, path: Path, threads: int, level: str = "ORT_ENABLE_ALL", spinning: str | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        if spinning is not None:
            opts.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        self.s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.name = self.s.get_inputs()[0].name

    def prepare(self, x):
        return np.ascontiguousarray(x, np.float32)

    def run(self, x):
        return self.s.run(None, {self.name: x})[0]

    def synchronize(self):
        pass

    def __call__(self, x):
        return self.run(self.prepare(x))


def measure(model_name: str, rounds: int, work: Path) -> dict:
    import timm
    import torch

    from lfcc_pipeline.benchmark.measure import latency
    from lfcc_pipeline.data.sources import load_dataset
    from lfcc_pipeline.data.specs import parse_data_spec
    from lfcc_pipeline.data.transforms import Normalization, to_float
    from lfcc_pipeline.models.onnx_export import export_onnx

    torch.manual_seed(0)
    fp32 = work / f"{model_name}.onnx"
    export_onnx(timm.create_model(model_name, pretrained=False, num_classes=1000).eval(), fp32, 224)
    ds = load_dataset(parse_data_spec("fashion-mini"))
    norm = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    calib = norm(to_float(ds.train.images[:64], 224)).numpy()
    held_out = norm(to_float(ds.test.images[:64], 224)).numpy()
    ref = Session(fp32, 2)(held_out).argmax(1)
    sessions, out = {}, {}
    for name, (q, s) in VARIANTS.items():
        path = work / f"{model_name}.{abs(hash(tuple(sorted(q.items()))))}.onnx"
        if not path.is_file():
            quantize(fp32, path, calib, **q)
        sessions[name] = Session(path, 2, **s)
        out[name] = {"agreement": round(100 * float((sessions[name](held_out).argmax(1) == ref).mean()), 1)}
    p50 = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, sess in sessions.items():
            p50[k].append(round(latency(sess, calib[:1], 10, 40, 8)["p50"], 3))
    for k in sessions:
        out[k].update(p50_ms=round(float(np.median(p50[k])), 3), p50_ms_per_round=p50[k])
        print(f"{model_name:>10} {k:46} p50 {out[k]['p50_ms']:7.2f} ms  agreement {out[k]['agreement']:5.1f}%")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "deit_small_patch16_224"])
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    from lfcc_pipeline.benchmark.results import record_result
    from lfcc_pipeline.runtimes.probe import cpu_name

    with tempfile.TemporaryDirectory() as tmp:
        for m in a.models:
            record_result(RESULTS, m, {"cpu": cpu_name(), "threads": 2, "batch": 1, "rounds": a.rounds,
                                       "loadavg_1min": os.getloadavg()[0], "variants": measure(m, a.rounds, Path(tmp))})  # fmt: skip


if __name__ == "__main__":
    main()
