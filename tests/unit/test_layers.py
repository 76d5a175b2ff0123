"""The ground floor's promises: predict and the bundle path load without torch; one error for a
model without the lfcc.preprocess contract."""

import subprocess
import sys
from pathlib import Path

import pytest

from lfcc_pipeline.core.errors import ArtifactError
from lfcc_pipeline.core.onnx_meta import preprocess_of

ROOT = Path(__file__).resolve().parents[2]


def test_predict_and_the_bundle_stage_import_no_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
        "import lfcc_pipeline.predict, lfcc_pipeline.stages.bundle\n"
        "from lfcc_pipeline.runtimes.trt_install import needs_calibration\n"
        "print(needs_calibration(['ort-fp32']), needs_calibration(['ort-int8']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]


@pytest.mark.parametrize("meta", [{}, {"lfcc.preprocess": "not json"}, {"lfcc.preprocess": '{"mean": [0.5]}'}])
def test_a_model_without_the_preprocess_contract_gets_one_error(meta):
    with pytest.raises(ArtifactError) as e:
        preprocess_of(meta, "student.onnx")
    assert "student.onnx carries no usable lfcc.preprocess metadata" in e.value.line()
    assert preprocess_of(meta, "student.onnx", required=False) is None


def test_the_preprocess_contract_round_trips():
    pre = preprocess_of({"lfcc.preprocess": '{"img_size": 32, "mean": [0.5], "std": [0.25]}'}, "m.onnx")
    assert pre.img_size == 32 and pre.mean == (0.5,) and pre.std == (0.25,)
