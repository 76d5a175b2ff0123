"""JPEG decoding on the training device: the loader's workers only read the files' bytes, and the
batch is decoded here (nvJPEG through `torchvision.io.decode_jpeg(list, device="cuda")`, one call per
batch), then given the same transform as the CPU path (data/decode.py), image by image on the device.

What nvJPEG does not take (PNGs named .JPEG, CMYK JPEGs, a corrupt file) is decoded with PIL on the
CPU instead; a file PIL cannot read either comes back as unreadable (file, why), as on the CPU path.
On a CPU device the same code runs with torchvision's CPU JPEG decoder (what the unit tests check).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lfcc_pipeline.core.errors import first_line
from lfcc_pipeline.data.decode import pil_decode

JPEG_MAGIC = b"\xff\xd8\xff"


class Encoded(NamedTuple):
    """One image file's bytes (a 1-d uint8 CPU tensor) and its name for messages."""

    data: torch.Tensor
    ref: str


def is_jpeg(data: torch.Tensor) -> bool:
    return bytes(data[:3].tolist()) == JPEG_MAGIC


class DeviceDecoder:
    """Encoded images -> one transformed uint8 batch on `device`."""

    def __init__(self, device: torch.device, transform) -> None:
        self.device, self.transform = device, transform
        self.fallbacks = 0  # images nvJPEG (or the CPU JPEG decoder) did not take, decoded by PIL instead

    def _jpegs(self, datas: list[torch.Tensor]) -> list[torch.Tensor | None]:
        """Decoded JPEGs on the device; None for each one the JPEG decoder rejects."""
        from torchvision.io import ImageReadMode, decode_jpeg

        if not datas:
            return []
        try:
            return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=self.device))
        except RuntimeError:  # no partial results on an error: find the bad ones one by one
            out: list[torch.Tensor | None] = []
            for d in datas:
                try:
                    out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError:
                    out.append(None)
            return out

    def __call__(self, items: list[Encoded], labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list]:
        """(uint8 images N,3,size,size on the device, their labels, [(file, why)] of those that did not decode)."""
        jpeg = [i for i, e in enumerate(items) if is_jpeg(e.data)]
        images: list[torch.Tensor | None] = [None] * len(items)
        for i, img in zip(jpeg, self._jpegs([items[i].data for i in jpeg]), strict=True):
            images[i] = img
        bad = []
        for i, img in enumerate(images):
            if img is None:
                try:
                    images[i] = pil_decode(items[i].data.numpy().tobytes()).to(self.device, non_blocking=True)
                    self.fallbacks += 1
                except Exception as e:  # what PIL raises for a bad file: OSError, SyntaxError, ValueError, ...
                    bad.append((items[i].ref, f"cannot be decoded ({type(e).__name__}: {first_line(e)})"))
        keep = [i for i, img in enumerate(images) if img is not None]
        if not keep:
            return torch.empty((0, 3, 1, 1), dtype=torch.uint8, device=self.device), labels[:0], bad
        batch = torch.stack([self.transform(images[i]) for i in keep])
        return batch, labels[torch.tensor(keep, dtype=torch.long)], bad
