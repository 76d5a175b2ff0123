"""Presets that carry the papers' training protocols (OFA-KD's official recipes, Hao840/OFAKD configs).

A preset sets option defaults; options given explicitly on the command line win. Values per
student family, as in the official configs (CNN students: SGD; ViT/MLP students: AdamW):

- cifar100: 224 px (CIFAR images upsampled), 300 epochs, batch 128, label smoothing 0.1, cosine;
  CNN: SGD lr 0.05, weight decay 2e-3, 3 warm-up epochs; ViT/MLP: AdamW lr 5e-4, weight decay
  0.05, 20 warm-up epochs, gradient clipping 5. The teacher starts from ImageNet weights and is
  fine-tuned for 30 epochs at lr 0.01 (SGD) first (our choice; the OFA-KD authors publish their
  fine-tuned CIFAR-100 teachers but not the recipe).
- imagenet: 224 px, 100 epochs, batch 64 per process (global 64 x WORLD_SIZE: 8 GPUs -> 512), label smoothing 0.1;
  CNN: SGD lr 0.1, weight decay 1e-4, step decay x0.1 every 30 epochs, 3 warm-up epochs;
  ViT/MLP: AdamW lr 5e-4, weight decay 0.05, cosine, 20 warm-up epochs (300 epochs in the
  official config), gradient clipping 5. The ImageNet-pretrained teacher is used as it is.
"""

from __future__ import annotations

import os
from typing import Any

from lfcc_pipeline.core.config import RunConfig
from lfcc_pipeline.core.errors import ConfigError
from lfcc_pipeline.core.options import dest_of, opt_of, replace_at, walk

PRESETS = ("cifar100", "imagenet")

# option name (as click names it) -> the config field it sets
FIELDS: dict[str, tuple[str, ...]] = {dest_of(f): path for path, f, _ in walk(RunConfig()) if opt_of(f) is not None}


def preset_options(name: str, student_family: str) -> dict[str, Any]:
    """Option values of preset `name` for a student of `student_family` (cnn | vit | mlp)."""
    cnn = student_family == "cnn"
    if name == "cifar100":
        common = {"img_size": 224, "epochs": 300, "batch_size": 128, "label_smoothing": 0.1, "schedule": "cosine",
                  "pretrained": True, "teacher_epochs": 30, "teacher_lr": 0.01}  # fmt: skip
        if cnn:
            return {**common, "optimizer": "sgd", "lr": 0.05, "weight_decay": 2e-3, "warmup_epochs": 3}
        return {**common, "optimizer": "adamw", "lr": 5e-4, "weight_decay": 0.05, "warmup_epochs": 20, "grad_clip": 5.0}
    if name == "imagenet":
        # the recipe's batch is per process; --batch-size is the global batch, split over torchrun's ranks
        world = int(os.environ.get("WORLD_SIZE", "1"))
        common = {"img_size": 224, "label_smoothing": 0.1, "pretrained": True, "teacher_epochs": 0}
        if cnn:
            return {**common, "epochs": 100, "batch_size": 64 * world, "optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-4,
                    "schedule": "step", "step_epochs": 30, "warmup_epochs": 3}  # fmt: skip
        return {**common, "epochs": 300, "batch_size": 128 * world, "optimizer": "adamw", "lr": 5e-4,
                "weight_decay": 0.05, "schedule": "cosine", "warmup_epochs": 20, "grad_clip": 5.0}  # fmt: skip
    raise ConfigError(f"unknown --preset {name!r}", f"choose one of {', '.join(PRESETS)}")


def apply_preset(cfg: RunConfig, name: str, keep: frozenset[str] = frozenset()) -> RunConfig:
    """`cfg` with the preset's values, except for the option names in `keep` (given explicitly)."""
    from lfcc_pipeline.models.registry import resolve

    for option, value in preset_options(name, resolve(cfg.models.student).family).items():
        if option not in keep:
            cfg = replace_at(cfg, FIELDS[option], value)
    return cfg
