"""nvJPEG through torchvision on the GPU: the device decode path gives the CPU path's images."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from tests.gpu.conftest import needs_cuda

pytestmark = [pytest.mark.gpu, needs_cuda]


def test_gpu_decode_matches_pil(tmp_path):
    from lfcc_pipeline.data.decode import file_transform
    from lfcc_pipeline.data.device_decode import DeviceDecoder, Encoded

    rng = np.random.default_rng(0)
    items, refs = [], []
    for i in range(16):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (60 + i, 80, 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
        items.append(Encoded(torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8), f"{i}.jpg"))
        refs.append(buf.getvalue())
    gpu = DeviceDecoder(torch.device("cuda"), file_transform(48, train=False))
    cpu = DeviceDecoder(torch.device("cpu"), file_transform(48, train=False))
    xg, yg, bad = gpu(items, torch.arange(16))
    xc, yc, _ = cpu(items, torch.arange(16))
    assert xg.is_cuda and xg.shape == (16, 3, 48, 48) and not bad and gpu.fallbacks == 0
    assert torch.equal(yg.cpu(), yc)
    assert (xg.cpu().float() - xc.float()).abs().mean() < 3  # nvJPEG and libjpeg differ by rounding only
