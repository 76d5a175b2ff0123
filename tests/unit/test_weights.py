import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from lfcc_pipeline.core.errors import ModelError
from lfcc_pipeline.models.factory import create_model
from lfcc_pipeline.models.weights import apply_state_dict, load_model, read_state_dict, save_model
from tests.conftest import ROOT


class _RunsCode:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_safetensors_roundtrip_rebuilds_the_architecture(tmp_path):
    model, recipe = create_model("test_resnet", num_classes=5, img_size=32)
    save_model(model, recipe, tmp_path / "m.safetensors")
    loaded, recipe2 = load_model(tmp_path / "m.safetensors")
    assert recipe2 == recipe
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model.eval()(x), loaded.eval()(x))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="refused"):
        read_state_dict(tmp_path / "evil.pt")
    assert not marker.exists()


def test_corrupt_checkpoints_are_clear_errors(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"\x80\x02garbage")
    with pytest.raises(ModelError):
        read_state_dict(tmp_path / "bad.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"nonsense")
    with pytest.raises(ModelError, match="corrupt"):
        read_state_dict(tmp_path / "bad.safetensors")
    with pytest.raises(ModelError, match="does not exist"):
        read_state_dict(tmp_path / "missing.pt")


def test_wrapped_state_dict_with_other_head_loads_backbone(tmp_path):
    src, _ = create_model("test_resnet", num_classes=1000, img_size=32)
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "w.pth")
    dst, _ = create_model("test_resnet", num_classes=10, img_size=32)
    apply_state_dict(dst, read_state_dict(tmp_path / "w.pth"), "w.pth")
    assert torch.equal(dst.conv1[0].weight, src.conv1[0].weight)
    assert dst.fc.weight.shape == (10, src.fc.weight.shape[1])


def test_weights_of_another_architecture_are_refused(tmp_path):
    vit, _ = create_model("test_vit", num_classes=10, img_size=32)
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    cnn, _ = create_model("test_resnet", num_classes=10, img_size=32)
    with pytest.raises(ModelError, match="does not fit"):
        apply_state_dict(cnn, read_state_dict(tmp_path / "vit.safetensors"), "vit.safetensors")


def test_the_same_weights_give_the_same_file_in_every_process(tmp_path):
    """safetensors orders its metadata differently per process; save_model's bytes must not depend on it."""
    code = ("import sys, torch; from pathlib import Path; torch.manual_seed(0)\n"
            "from lfcc_pipeline.models.factory import create_model\n"
            "from lfcc_pipeline.models.weights import save_model\n"
            "m, r = create_model('test_resnet', num_classes=5, img_size=32); save_model(m, r, Path(sys.argv[1]))")  # fmt: skip
    paths = [tmp_path / f"{i}.safetensors" for i in range(3)]
    for p in paths:
        subprocess.run([sys.executable, "-c", code, str(p)], check=True, cwd=ROOT)
    blobs = {p.read_bytes() for p in paths}
    assert len(blobs) == 1
    _, recipe = load_model(paths[0])
    assert recipe.name == "test_resnet" and recipe.num_classes == 5
