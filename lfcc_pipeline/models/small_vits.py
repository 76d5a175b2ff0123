"""Small ViTs for low-resolution benchmarks, registered with timm (so any timm-name path builds them).

`vit_p4`: a ViT with 4x4 patches (an 8x8 token grid at 32 px, 64 tokens plus CLS), width 128,
depth 6, 4 heads, MLP ratio 2: about 0.8 M parameters. timm's own ViTs use 14-32 px patches, which
leave a 2x2 grid or less at 32 px, too coarse for token-level distillation. Randomly initialised only
(no pretrained weights exist); the benchmarks train it on the full Fashion-MNIST training split.
"""

from __future__ import annotations

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer, _create_vision_transformer

# timm reads a registered model's default configuration from its module's `default_cfgs`
default_cfgs = generate_default_cfgs(
    {
        "vit_p4.untrained": {
            "input_size": (3, 32, 32),
            "num_classes": 10,
            "mean": IMAGENET_DEFAULT_MEAN,
            "std": IMAGENET_DEFAULT_STD,
            "crop_pct": 1.0,
            "interpolation": "bicubic",
        }
    }  # fmt: skip
)


@register_model
def vit_p4(pretrained: bool = False, **kwargs) -> VisionTransformer:
    args = {"img_size": 32, "patch_size": 4, "embed_dim": 128, "depth": 6, "num_heads": 4, "mlp_ratio": 2.0}
    return _create_vision_transformer("vit_p4", pretrained=pretrained, **{**args, **kwargs})
