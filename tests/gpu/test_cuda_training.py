"""The fast single-GPU training path: bf16 autocast, channels-last, GPU-resident data, compile."""

import pytest
import torch

from tests.gpu.conftest import needs_cuda

pytestmark = [pytest.mark.gpu, needs_cuda]


@pytest.mark.parametrize("method", ["kd", "lfcc", "ofa"])
@pytest.mark.parametrize("compile_", [False, True])
def test_distill_steps_on_the_gpu(method, compile_, tmp_path):
    from lfcc_pipeline.core.config import OptimConfig
    from lfcc_pipeline.data.loader import Batches
    from lfcc_pipeline.data.sources import load_dataset
    from lfcc_pipeline.data.specs import DataSpec
    from lfcc_pipeline.methods import METHODS, distill_config
    from lfcc_pipeline.models.factory import create_model, normalization
    from lfcc_pipeline.training.loop import FitSpec, fit

    ds = load_dataset(DataSpec("fashion-mini", None), 0.1, 0)
    teacher, _ = create_model("test_vit", 10, 64)
    student, _ = create_model("test_resnet", 10, 64)
    distiller = METHODS[method](student, teacher, distill_config(method=method))
    spec = FitSpec(1, 1e-3, OptimConfig(), "auto", 1000, 0, tmp_path / "last.pt", "fp", compile=compile_)
    train = Batches(ds.train.subset(torch.arange(512).numpy()), 64, True, 64)
    val = Batches(ds.val, 256, False, 64)
    result = fit(distiller, train, val, 64, normalization(student), normalization(teacher), torch.device("cuda"), spec)
    assert result.history[0]["val_top1"] > 10  # learned something in 8 steps, and nothing crashed
    assert train.split.images.is_cuda  # the in-memory split moved to the GPU
    convs = [p for p in student.parameters() if p.ndim == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)  # channels-last by default on CUDA
