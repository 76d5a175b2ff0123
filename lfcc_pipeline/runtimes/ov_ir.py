"""OpenVINO IR (model.xml + model.bin) from one of our ONNX files, and the lfcc.* metadata it carries.

The IR is converted with `openvino.convert_model` and saved with `openvino.save_model` with FP32
weights (`compress_to_fp16=False`: the precision is the target's, not the file's). The ONNX file's
`lfcc.*` metadata (preprocessing, labels, role, architecture) goes into the IR's rt_info under
`lfcc`, so `bench --model student.xml` and the bundle read it from the IR alone. Both files are
written atomically, the .bin first: an .xml under its real name always has its weights beside it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from lfcc_pipeline.core.atomic import write_bytes
from lfcc_pipeline.core.errors import ArtifactError, tool_failures
from lfcc_pipeline.core.onnx_meta import read_metadata
from lfcc_pipeline.runtimes.ov_install import import_openvino

RT_SECTION = "lfcc"


def bin_path(xml: Path) -> Path:
    """The weights file OpenVINO reads beside `xml`."""
    return Path(xml).with_suffix(".bin")


def convert_onnx(onnx_path: Path, xml: Path) -> list[Path]:
    """Write the IR of `onnx_path` to `xml` (+ .bin); returns both paths (the .xml first)."""
    ov = import_openvino()
    meta = read_metadata(onnx_path)
    with tool_failures(f"OpenVINO conversion of {onnx_path.name}", "re-export the model; --debug shows the traceback"):
        model = ov.convert_model(str(onnx_path))
        for key, value in meta.items():
            if key.startswith("lfcc."):
                model.set_rt_info(value, [RT_SECTION, key])
        with tempfile.TemporaryDirectory(prefix="lfcc-ov-") as tmp:
            out = Path(tmp) / "model.xml"
            ov.save_model(model, str(out), compress_to_fp16=False)
            write_bytes(bin_path(xml), bin_path(out).read_bytes())
            write_bytes(xml, out.read_bytes())
    return [Path(xml), bin_path(xml)]


def read_model(xml: Path):
    """The openvino.Model of an IR file (ArtifactError for a missing or unreadable one)."""
    ov = import_openvino()
    xml = Path(xml)
    if not bin_path(xml).is_file():
        raise ArtifactError(f"{xml} has no weights file {bin_path(xml).name} beside it", "copy the .bin with the .xml")
    try:
        return ov.Core().read_model(str(xml))
    except Exception as e:  # OpenVINO raises RuntimeError with a long parser message
        raise ArtifactError(f"OpenVINO cannot read {xml}: {str(e).strip().splitlines()[0][:160]}",
                            "pass an IR .xml written by lfcc-pipeline (export/ or calib/)") from e  # fmt: skip


def ir_metadata(model) -> dict[str, str]:
    """The lfcc.* metadata of a loaded openvino.Model ({} for an IR not made by lfcc-pipeline)."""
    if not model.has_rt_info([RT_SECTION]):
        return {}
    keys = model.get_rt_info([RT_SECTION]).astype(dict)
    return {str(k): model.get_rt_info([RT_SECTION, str(k)]).astype(str) for k in keys}


def ir_precision(model) -> str:
    """int8 where the IR holds FakeQuantize (or Q/DQ-derived) nodes, else fp32."""
    ops = {op.get_type_name() for op in model.get_ops()}
    return "int8" if ops & {"FakeQuantize", "FakeConvert"} else "fp32"
