"""Create timm models by short or timm name, with a new head and a checked input size."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
from torch import nn

from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.core.errors import ModelError
from lfcc_pipeline.data.transforms import Normalization
from lfcc_pipeline.models import small_vits  # noqa: F401 - registers vit_p4 with timm
from lfcc_pipeline.models.registry import ModelEntry, resolve

_logger = logging.getLogger(__name__)
HUB_HOST = "huggingface.co"


@dataclass(frozen=True)
class ModelRecipe:
    """Everything needed to rebuild the same architecture (weights travel separately)."""

    name: str
    timm_name: str
    num_classes: int
    img_size: int
    takes_img_size: bool

    def to_meta(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> ModelRecipe:
        try:
            return cls(
                name=meta["name"],
                timm_name=meta["timm_name"],
                num_classes=int(meta["num_classes"]),
                img_size=int(meta["img_size"]),
                takes_img_size=meta["takes_img_size"] == "True",
            )
        except (KeyError, ValueError) as e:
            raise ModelError(
                f"weights file metadata lacks the model recipe ({e})", "rerun the stage that wrote it"
            ) from e


def default_img_size(name: str) -> int:
    entry = resolve(name)
    import timm

    cfg = timm.get_pretrained_cfg(entry.timm_name)
    size = cfg.input_size if cfg is not None else (3, 224, 224)
    return int(size[-1])


def run_img_size(cfg: RunConfig) -> int:
    """The run's image size: --img-size, else the teacher's pretrained input size."""
    return cfg.models.img_size or default_img_size(cfg.models.teacher)


def _instantiate(entry: ModelEntry, num_classes: int, img_size: int, pretrained: bool) -> tuple[nn.Module, bool]:
    import timm

    try:
        return timm.create_model(
            entry.timm_name, pretrained=pretrained, num_classes=num_classes, img_size=img_size
        ), True
    except TypeError as e:
        if "img_size" not in str(e):
            raise
    return timm.create_model(entry.timm_name, pretrained=pretrained, num_classes=num_classes), False


def check_input_size(model: nn.Module, name: str, img_size: int) -> None:
    """Run one tiny forward pass; turn shape errors into a ModelError naming the image size."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, img_size, img_size))
    except (RuntimeError, ValueError, AssertionError) as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ModelError(
            f"model {name} cannot take {img_size}x{img_size} images ({reason})",
            "pick another --img-size (ViTs need a multiple of their patch size, e.g. 16)",
        ) from e
    finally:
        model.train(was_training)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers; False fast when offline (HF_HUB_OFFLINE=1 or no route)."""
    from lfcc_pipeline.data.sources import network_reachable

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return False
    return network_reachable(HUB_HOST, 443, timeout)


def has_pretrained(entry: ModelEntry) -> bool:
    import timm

    cfg = timm.get_pretrained_cfg(entry.timm_name)
    return cfg is not None and bool(cfg.hf_hub_id or cfg.url or cfg.file)


def create_model(name: str, num_classes: int, img_size: int, pretrained: bool = False) -> tuple[nn.Module, ModelRecipe]:
    """Build `name` with a `num_classes` head for `img_size` inputs; check the size works."""
    entry = resolve(name)
    if num_classes < 2:
        raise ModelError(f"a classifier needs at least 2 classes, got {num_classes}", "check the dataset")
    try:
        model, takes = _instantiate(entry, num_classes, img_size, pretrained)
    except (RuntimeError, ValueError, AssertionError) as e:
        if pretrained:
            raise
        raise ModelError(
            f"cannot build {name} for {img_size}x{img_size} inputs: {str(e)[:160]}", "pick another --img-size"
        ) from e
    check_input_size(model, name, img_size)
    return model, ModelRecipe(name, entry.timm_name, num_classes, img_size, takes)


def rebuild(recipe: ModelRecipe) -> nn.Module:
    """The architecture a recipe describes, randomly initialised (load weights after)."""
    import timm

    kwargs = {"num_classes": recipe.num_classes}
    if recipe.takes_img_size:
        kwargs["img_size"] = recipe.img_size
    return timm.create_model(recipe.timm_name, pretrained=False, **kwargs)


def try_pretrained(name: str, num_classes: int, img_size: int) -> tuple[nn.Module, ModelRecipe] | None:
    """timm pretrained weights with a new head, or None (with a log line) where they cannot be had."""
    entry = resolve(name)
    if not has_pretrained(entry):
        _logger.info("timm has no pretrained weights for %s", entry.timm_name)
        return None
    offline_cache = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
    if not offline_cache and not hub_reachable():
        _logger.info("the Hugging Face hub is unreachable; no pretrained weights for %s", entry.timm_name)
        return None
    try:
        return create_model(name, num_classes, img_size, pretrained=True)
    except (OSError, RuntimeError, ValueError) as e:
        reason = str(e).splitlines()[0].split(". ")[0][:120] if str(e) else type(e).__name__
        _logger.info("could not load pretrained weights for %s (%s)", entry.timm_name, reason)
        return None


def normalization(model: nn.Module) -> Normalization:
    """Mean/std from the model's timm data config."""
    import timm.data

    cfg = timm.data.resolve_data_config({}, model=model)
    return Normalization(tuple(float(v) for v in cfg["mean"]), tuple(float(v) for v in cfg["std"]))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
