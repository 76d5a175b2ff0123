"""Export a classifier to ONNX: explicit exporter choice, dynamic batch, metadata, checker."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from lfcc_pipeline.core.atomic import atomic_path
from lfcc_pipeline.core.errors import StageFailed, tool_failures
from lfcc_pipeline.core.onnx_meta import set_metadata

_logger = logging.getLogger(__name__)
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def export_onnx(
    model: nn.Module,
    path: Path,
    img_size: int,
    opset: int = 17,
    exporter: str = "torchscript",
    metadata: dict[str, str] | None = None,
) -> None:
    """Write `model` (eval mode, fp32, CPU) to `path` with a dynamic batch axis; check the graph.

    torch >= 2.9 defaults to the dynamo exporter, so the choice is always passed explicitly.
    """
    import onnx

    model = model.eval().float().cpu()
    example = torch.randn(2, 3, img_size, img_size)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer/deprecation chatter; the checker and parity decide
        hint = "try --exporter " + ("torchscript" if exporter == "dynamo" else "dynamo")
        with tool_failures(f"ONNX export ({exporter}) of {type(model).__name__}", hint):
            if exporter == "dynamo":
                batch = torch.export.Dim("batch", min=1, max=4096)
                torch.onnx.export(
                    model,
                    (example,),
                    str(tmp),
                    dynamo=True,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_shapes=({0: batch},),
                    external_data=False,
                )
            else:
                torch.onnx.export(
                    model,
                    (example,),
                    str(tmp),
                    dynamo=False,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    do_constant_folding=True,
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                )
        proto = onnx.load(str(tmp))
        set_metadata(proto, metadata or {})
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as e:
            raise StageFailed(f"exported ONNX graph fails onnx.checker: {str(e).splitlines()[0][:200]}") from e
        onnx.save(proto, str(tmp))
