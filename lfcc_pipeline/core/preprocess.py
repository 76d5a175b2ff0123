"""The preprocessing contract a deployed model expects, applied with numpy + Pillow only.

The same description is embedded in every exported ONNX file (metadata_props["preprocess"]) and
written to bundle/preprocess.json, so apps and `predict` need neither torch nor this package's
training code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Preprocess:
    img_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = "stretch"  # "stretch": whole image to img_size^2; "center_crop": shorter side, then crop
    crop_pct: float = 1.0  # center_crop: resize the shorter side to img_size / crop_pct first
    interpolation: str = "bilinear"
    channel_order: str = "RGB"
    layout: str = "NCHW"
    scale: float = 1.0 / 255.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        d = dict(d)
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def apply(self, image) -> np.ndarray:
        """A PIL image -> float32 array (1, 3, img_size, img_size), normalised."""
        from PIL import Image

        resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[self.interpolation]
        im = image.convert("RGB")
        s = self.img_size
        if self.resize == "center_crop":
            w, h = im.size
            short = int(round(s / self.crop_pct))
            nw, nh = (short, max(short, round(h * short / w))) if w <= h else (max(short, round(w * short / h)), short)
            im = im.resize((nw, nh), resample)
            left, top = (nw - s) // 2, (nh - s) // 2
            im = im.crop((left, top, left + s, top + s))
        else:
            im = im.resize((s, s), resample)
        x = np.asarray(im, dtype=np.float32) * self.scale
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
