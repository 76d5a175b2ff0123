"""Short model names -> timm names, with the architecture family each belongs to.

Any timm model name is accepted too; its family is read from the model class.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from lfcc_pipeline.core.errors import ModelError


@dataclass(frozen=True)
class ModelEntry:
    short: str
    timm_name: str
    arch: str  # human name of the architecture
    family: str  # vit | cnn | mlp


SHORT_NAMES: dict[str, ModelEntry] = {
    e.short: e
    for e in (
        ModelEntry("deit_t", "deit_tiny_patch16_224", "DeiT", "vit"),
        ModelEntry("deit_s", "deit_small_patch16_224", "DeiT", "vit"),
        ModelEntry("vit_s", "vit_small_patch16_224", "ViT", "vit"),
        ModelEntry("swin_t", "swin_tiny_patch4_window7_224", "Swin", "vit"),
        ModelEntry("convnext_t", "convnext_tiny", "ConvNeXt", "cnn"),
        ModelEntry("mixer_b16", "mixer_b16_224", "MLP-Mixer", "mlp"),
        ModelEntry("resmlp_s12", "resmlp_12_224", "ResMLP", "mlp"),
        ModelEntry("resnet18", "resnet18", "ResNet", "cnn"),
        ModelEntry("resnet50", "resnet50", "ResNet", "cnn"),
        ModelEntry("mobilenetv2", "mobilenetv2_100", "MobileNetV2", "cnn"),
        ModelEntry("mobilenetv3", "mobilenetv3_large_100", "MobileNetV3", "cnn"),
        ModelEntry("efficientnet_b0", "efficientnet_b0", "EfficientNet", "cnn"),
    )
}

# timm model modules by family; anything else counts as a CNN.
_VIT_MODULES = (
    "vision_transformer",
    "vision_transformer_relpos",
    "vision_transformer_sam",
    "deit",
    "swin_transformer",
    "swin_transformer_v2",
    "eva",
    "beit",
    "cait",
    "pvt_v2",
    "twins",
    "levit",
    "xcit",
    "crossvit",
    "mvitv2",
    "hiera",
    "tnt",
    "naflexvit",
)
_MLP_MODULES = ("mlp_mixer",)


def family_of_module(module: str) -> str:
    if module in _MLP_MODULES:
        return "mlp"
    return "vit" if module in _VIT_MODULES else "cnn"


def resolve(name: str) -> ModelEntry:
    """Map a short name or a timm name to a ModelEntry; raise ModelError for unknown names."""
    import timm

    from lfcc_pipeline.models import small_vits  # noqa: F401 - registers vit_p4 with timm

    if name in SHORT_NAMES:
        return SHORT_NAMES[name]
    if not isinstance(name, str) or not name or not timm.is_model(name):
        choices = list(dict.fromkeys([*SHORT_NAMES, *timm.list_models()]))
        close = difflib.get_close_matches(str(name), choices, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "run `lfcc-pipeline models` for the short names"
        raise ModelError(f"unknown model {name!r} (neither a short name nor a timm model)", hint)
    module = timm.models.model_entrypoint(name).__module__.rsplit(".", 1)[-1]
    return ModelEntry(name, name, module, family_of_module(module))
