"""GPU and TensorRT tests: collected everywhere, skipped with the reason where CUDA/TensorRT are missing."""

import importlib.util

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
HAS_TRT = importlib.util.find_spec("tensorrt") is not None

needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (none visible)")
needs_tensorrt = pytest.mark.skipif(
    not (HAS_CUDA and HAS_TRT), reason="needs TensorRT and a CUDA GPU (pip install tensorrt on a GPU machine)"
)
