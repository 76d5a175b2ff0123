"""Weights I/O: safetensors for our artifacts; foreign checkpoints only without code execution."""

from __future__ import annotations

import json
import logging
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from lfcc_pipeline.core.atomic import write_bytes
from lfcc_pipeline.core.errors import ModelError
from lfcc_pipeline.models.factory import ModelRecipe, create_model, rebuild, try_pretrained

_logger = logging.getLogger(__name__)
_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "module", "student")
_PREFIXES = ("module.", "model.", "_orig_mod.")


def save_model(model: nn.Module, recipe: ModelRecipe, path: Path) -> None:
    """Write weights plus the recipe to rebuild the architecture, atomically, as safetensors."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    blob = _sorted_metadata(save(state, metadata=recipe.to_meta()))
    write_bytes(path, blob)  # serialised first: write errors stay OSErrors


def _sorted_metadata(blob: bytes) -> bytes:
    """The same file for the same weights: safetensors writes its metadata map in an order that changes
    from process to process, so the header is rewritten with the keys sorted (same format: 8-byte length,
    JSON header padded with spaces to 8 bytes, then the unchanged tensor data)."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    ordered = ({"__metadata__": dict(sorted(meta.items()))} if meta else {}) | header
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + n :]


def load_model(path: Path) -> tuple[nn.Module, ModelRecipe]:
    """Rebuild and load a model saved by save_model."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (OSError, RuntimeError, ValueError) as e:  # safetensors raises SafetensorError (a RuntimeError/OSError)
        raise ModelError(f"cannot read weights {path}: {str(e)[:120]}", "rerun the stage that wrote it") from e
    except Exception as e:
        raise ModelError(f"cannot read weights {path}: {type(e).__name__}", "rerun the stage that wrote it") from e
    recipe = ModelRecipe.from_meta(meta)
    model = rebuild(recipe)
    model.load_state_dict(state, strict=True)
    return model, recipe


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file or a torch checkpoint loaded with weights_only=True.

    A pickle that needs arbitrary code to load is refused: a downloaded checkpoint must not run code.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist", "check the path")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:
            raise ModelError(f"cannot read safetensors file {path}: {str(e)[:120]}", "the file is corrupt") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" in str(e).lower():  # the pickle names a function or class to call: code execution
            raise ModelError(
                f"refused to load {path}: it needs code execution to unpickle (weights_only=True)",
                "convert it to safetensors or a plain state_dict in a trusted environment",
            ) from e
        raise ModelError(f"cannot read {path}: not a torch checkpoint or safetensors file", "check the path") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise ModelError(f"cannot read checkpoint {path}: {str(e).splitlines()[0][:120]}", "the file is corrupt") from e
    for _ in range(3):  # unwrap {"state_dict": {...}} style containers
        if isinstance(obj, dict):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is not None and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = inner
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"{path} holds no state_dict of tensors", "save the model's state_dict()")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def apply_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load foreign weights; a classifier head of another shape is dropped (re-initialised)."""
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    head_keys = {k for k in mismatched if _is_head(model, k)}
    if set(mismatched) - head_keys:
        bad = sorted(set(mismatched) - head_keys)[:3]
        raise ModelError(
            f"{source} does not fit the model: shape mismatch at {', '.join(bad)}",
            "check that the weights belong to this architecture",
        )
    state = {k: v for k, v in state.items() if k not in head_keys}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not _is_head(model, k)]
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise ModelError(
            f"{source} does not fit the model: {what}", "check that the weights belong to this architecture"
        )
    if head_keys:
        _logger.info("%s: classifier head has another class count; it is re-initialised", source)


def _is_head(model: nn.Module, key: str) -> bool:
    head = getattr(model, "pretrained_cfg", {}).get("classifier", "head")
    heads = head if isinstance(head, (list, tuple)) else (head,)
    return any(key.startswith(h + ".") for h in heads)


def initial_model(
    name: str,
    num_classes: int,
    img_size: int,
    weights: Path | None = None,
    pretrained: bool | None = None,
    flags: tuple[str, str] = ("--teacher-weights", "--no-pretrained"),
) -> tuple[nn.Module, ModelRecipe, str]:
    """(model, recipe, source) for training to start from: `weights` (safetensors or a weights_only torch
    file, head re-initialised for `num_classes`), else timm's pretrained weights (pretrained True: required;
    None: where the hub is reachable; False: never), else random. `source` is "weights:PATH",
    "timm-pretrained" or "scratch"; `flags` name the weights option and how to go without pretrained
    weights, for the error when pretrained=True cannot be met."""
    if weights is not None:
        model, recipe = create_model(name, num_classes, img_size)
        apply_state_dict(model, read_state_dict(weights), f"{flags[0]} {weights}")
        return model, recipe, f"weights:{weights}"
    if pretrained is not False:
        got = try_pretrained(name, num_classes, img_size)
        if got is not None:
            return got[0], got[1], "timm-pretrained"
        if pretrained is True:
            raise ModelError(
                f"pretrained weights for {name} cannot be loaded (hub unreachable, not cached, or none exist)",
                f"pass {flags[0]} PATH, or {flags[1]} to train from scratch",
            )
    model, recipe = create_model(name, num_classes, img_size)
    return model, recipe, "scratch"
