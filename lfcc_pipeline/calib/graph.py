"""Small ONNX graph helpers shared by the INT8 and FP16 producers."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lfcc_pipeline.core.atomic import write_with
from lfcc_pipeline.core.errors import ArtifactError
from lfcc_pipeline.core.onnx_meta import metadata, set_metadata  # noqa: F401  (the producers' metadata helpers)

_logger = logging.getLogger(__name__)
STANDARD_DOMAINS = ("", "ai.onnx")


def load(path: Path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError, OSError ...
        raise ArtifactError(f"cannot read ONNX model {path}: {str(e)[:120]}", "rerun the export stage") from e


def save(model, path: Path) -> None:
    """onnx.checker, then an atomic write."""
    import onnx

    onnx.checker.check_model(model)
    write_with(path, lambda tmp: onnx.save(model, str(tmp)))


def input_info(model) -> tuple[str, list[Any]]:
    """(name, dims) of the single graph input; dims are ints, or dim_param strings / None when dynamic."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ArtifactError(f"expected a model with one image input, found {len(inputs)}", "re-export the model")
    dims = []
    for d in inputs[0].type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or None)
    return inputs[0].name, dims


def fold_identity_initializers(model):
    """Replace `Identity(initializer)` nodes by a copy of the initializer under the output name.

    The TorchScript exporter deduplicates equal tensors (e.g. zero biases) behind Identity nodes;
    quantizers then see a weight or bias that is not an initializer and leave it in float, or
    quantize it at run time.
    """
    import onnx

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in outputs:
            t = onnx.TensorProto()
            t.CopyFrom(inits[node.input[0]])
            t.name = node.output[0]
            graph.initializer.append(t)
        else:
            keep.append(node)
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)
        drop_unused_initializers(graph)
    return model


def drop_unused_initializers(graph) -> None:
    """Remove the initializers no node reads and no graph output names."""
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def topological_sort(model):
    """Reorder nodes so every node comes after the producers of its inputs (converters append Casts)."""
    graph = model.graph
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            missing = sorted({i for n in rest for i in n.input if i not in ready})[:3]
            raise ArtifactError(f"graph has a cycle or undefined inputs ({', '.join(missing)})", "re-export the model")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)
    return model


def strip_unused_opsets(model):
    """Drop opset imports of domains no node uses (ONNX Runtime's optimizer adds its own)."""
    used = {n.domain or "" for n in model.graph.node}
    keep = [o for o in model.opset_import if (o.domain or "") in STANDARD_DOMAINS or o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return model


def opset(model) -> int:
    return max((o.version for o in model.opset_import if (o.domain or "") in STANDARD_DOMAINS), default=0)


def session(path_or_bytes, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    src = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def float_ranges(model, inputs: np.ndarray, batch: int = 16) -> dict[str, float]:
    """max |value| of every float32 tensor (graph input, node outputs) over `inputs`, by ONNX Runtime."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    floats = {
        v.name
        for v in (*inferred.graph.value_info, *inferred.graph.output)
        if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    }
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for out in node.output:
            if out in floats and out not in existing:
                probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(out))
                existing.add(out)
    sess = session(probe.SerializeToString())
    name = sess.get_inputs()[0].name
    names = [o.name for o in sess.get_outputs()]
    ranges: dict[str, float] = {name: float(np.abs(inputs).max())}
    for i in range(0, len(inputs), batch):
        for key, value in zip(names, sess.run(None, {name: inputs[i : i + batch]}), strict=True):
            if isinstance(value, np.ndarray) and value.dtype == np.float32 and value.size:
                ranges[key] = max(ranges.get(key, 0.0), float(np.abs(value).max()))
    return ranges


@contextlib.contextmanager
def quiet_tools() -> Iterator[io.StringIO]:
    """Silence third-party chatter (prints, their progress bars, root-logger warnings) while a tool runs.

    Our own progress bars keep the stderr they were created with. What was printed is logged at
    DEBUG level afterwards (`--debug` shows it).
    """
    root = logging.getLogger()
    handler = logging.NullHandler()
    level = root.level
    root.addHandler(handler)  # so logging.warning() does not install a stderr handler via basicConfig
    root.setLevel(logging.ERROR)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            yield buf
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        if buf.getvalue().strip():
            _logger.debug("tool output:\n%s", buf.getvalue().strip())


# ONNX Runtime's integer operators (its CPU INT8 kernels); TensorRT takes Q/DQ only
INTEGER_OPS = frozenset({"QLinearConv", "QLinearMatMul", "QGemm", "ConvInteger", "MatMulInteger",
                         "DynamicQuantizeLinear"})  # fmt: skip


def precision(model) -> str:
    """int8 if the graph has Q/DQ nodes or integer operators, fp16 if most weights are FP16, else fp32."""
    import onnx

    ops = {n.op_type for n in model.graph.node}
    if {"QuantizeLinear", "DequantizeLinear"} & ops or INTEGER_OPS & ops:
        return "int8"
    types = [t.data_type for t in model.graph.initializer]
    return "fp16" if types and sum(t == onnx.TensorProto.FLOAT16 for t in types) > len(types) / 2 else "fp32"
