import pytest
import timm
import torch

from lfcc_pipeline.core.errors import ModelError
from lfcc_pipeline.models.factory import create_model, default_img_size
from lfcc_pipeline.models.registry import SHORT_NAMES, resolve


@pytest.mark.parametrize("short", sorted(SHORT_NAMES))
def test_every_short_name_is_a_timm_model(short):
    entry = resolve(short)
    assert timm.is_model(entry.timm_name)
    assert entry.family in ("vit", "cnn", "mlp")


@pytest.mark.parametrize(
    "name, family", [("deit_s", "vit"), ("swin_t", "vit"), ("mixer_b16", "mlp"), ("resnet18", "cnn"),
                     ("test_vit", "vit"), ("test_resnet", "cnn"), ("test_convnext", "cnn"), ("resmlp_24_224", "mlp")]
)  # fmt: skip
def test_family_of_short_and_timm_names(name, family):
    assert resolve(name).family == family


def test_timm_names_pass_through():
    assert resolve("test_vit").timm_name == "test_vit"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ModelError) as e:
        resolve("resnet19")
    assert "resnet18" in e.value.line()
    assert e.value.line().count("resnet18") == 1


def test_new_head_and_image_size():
    model, recipe = create_model("test_vit", num_classes=7, img_size=64)
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 7)
    assert recipe.takes_img_size and recipe.img_size == 64
    cnn, recipe = create_model("test_resnet", num_classes=3, img_size=48)
    assert cnn(torch.zeros(1, 3, 48, 48)).shape == (1, 3)
    assert not recipe.takes_img_size


def test_image_size_the_model_cannot_take():
    with pytest.raises(ModelError, match="img-size|image size|cannot"):
        create_model("test_vit", num_classes=10, img_size=40)  # not a multiple of the 16-px patch


def test_default_img_size_comes_from_timm():
    assert default_img_size("deit_s") == 224
    assert default_img_size("test_vit") == 160
