import pytest
import torch

from lfcc_pipeline.core.errors import ModelError
from lfcc_pipeline.models.factory import create_model
from lfcc_pipeline.models.taps import forward_with_taps, normalize_indices, tap_channels, tap_reductions


@pytest.mark.parametrize("name", ["test_vit", "test_resnet", "test_convnext"])
def test_taps_are_nchw_with_feature_info_channels(name):
    size = 64
    model, _ = create_model(name, num_classes=10, img_size=size)
    model.eval()
    idx = normalize_indices(model, [-3, -2, -1])
    x = torch.randn(2, 3, size, size)
    logits, feats = forward_with_taps(model, x, idx)
    assert torch.allclose(logits, model(x), atol=1e-5)  # one pass gives the model's own logits
    channels, reductions = tap_channels(model), tap_reductions(model)
    for i, f in zip(idx, feats, strict=True):
        assert f.ndim == 4 and f.shape[0] == 2
        assert f.shape[1] == channels[i]
        assert f.shape[2] == size // reductions[i]


def test_vit_taps_are_token_grids():
    model, _ = create_model("test_vit", num_classes=10, img_size=64)
    _, feats = forward_with_taps(model, torch.randn(1, 3, 64, 64), [0, 5])
    assert [tuple(f.shape[2:]) for f in feats] == [(4, 4), (4, 4)]  # 64 px / 16-px patches, CLS dropped


def test_out_of_range_tap_index():
    model, _ = create_model("test_resnet", num_classes=10, img_size=32)
    with pytest.raises(ModelError, match="out of range"):
        normalize_indices(model, [9])
