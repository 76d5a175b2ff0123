"""The metadata lfcc-pipeline embeds in every ONNX file it writes (metadata_props `lfcc.*`): read,
write, and the preprocessing contract `lfcc.preprocess` parsed in one place with one error.

onnx is imported only where a file is read; nothing here needs torch."""

from __future__ import annotations

import json
from pathlib import Path

from lfcc_pipeline.core.errors import ArtifactError
from lfcc_pipeline.core.preprocess import Preprocess

PREPROCESS_KEY = "lfcc.preprocess"


def metadata(model) -> dict[str, str]:
    """metadata_props of a loaded ONNX ModelProto as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def set_metadata(model, values: dict[str, str]) -> None:
    """Merge `values` into the model's metadata_props (existing keys are overwritten)."""
    current = metadata(model)
    current.update(values)
    del model.metadata_props[:]
    for key, value in current.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(path: Path) -> dict[str, str]:
    """metadata_props of an ONNX file, without loading the weights."""
    import onnx

    return metadata(onnx.load(str(path), load_external_data=False))


def preprocess_of(meta: dict[str, str], source: Path | str, required: bool = True) -> Preprocess | None:
    """The `lfcc.preprocess` contract of a model whose metadata is `meta` (read from `source`).

    Missing or unreadable: ArtifactError, or None where `required` is False (a foreign model)."""
    try:
        return Preprocess.from_dict(json.loads(meta[PREPROCESS_KEY]))
    except (KeyError, TypeError, ValueError) as e:
        if not required:
            return None
        why = "missing" if isinstance(e, KeyError) else f"unreadable: {e}"
        raise ArtifactError(
            f"{source} carries no usable {PREPROCESS_KEY} metadata ({why}; not made by lfcc-pipeline, "
            "or an engine's .json is missing)",
            "use the files a run directory or bundle holds (export/, calib/, engines/), or rerun the export stage",
        ) from e
