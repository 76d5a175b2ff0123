"""The OpenVINO targets in the target table and what the machine says about them, with or without the extra."""

import pytest

from lfcc_pipeline.core.targets import OV_TARGETS, parse_target
from lfcc_pipeline.runtimes import ov_install
from lfcc_pipeline.runtimes.targets import unavailable_reason


def test_table_rows():
    assert OV_TARGETS == ("ov-fp32", "ov-fp16", "ov-int8")
    assert parse_target("ov-int8").calib_flavour == "int8.cpu"  # the IR is converted from calibrate's CPU model
    assert not parse_target("ov-fp32").needs_calibrate and not parse_target("ov-fp16").needs_calibrate
    assert not any(parse_target(t).needs_build for t in OV_TARGETS)


@pytest.mark.parametrize("target", OV_TARGETS)
def test_without_the_extra_every_target_says_how_to_install(target, monkeypatch):
    monkeypatch.setattr(ov_install, "openvino_version", lambda: None)
    reason = unavailable_reason(target)
    assert reason == f'target {target} needs OpenVINO; pip install "lfcc-pipeline[openvino]" (OpenVINO and NNCF)'


def test_fp16_needs_native_fp16():
    assert ov_install.fp16_reason(["FP32", "BF16", "FP16", "INT8"]) is None
    reason = ov_install.fp16_reason(["FP32", "BF16", "INT8"])
    assert "native FP16" in reason and "FP32, BF16, INT8" in reason and "use ov-fp32 or ov-int8" in reason


def test_ov_fp16_reason_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(ov_install, "openvino_version", lambda: "2026.4.1")
    monkeypatch.setattr(ov_install, "cpu_capabilities", lambda: ["FP32", "INT8"])
    assert "native FP16" in unavailable_reason("ov-fp16")
    assert unavailable_reason("ov-int8") is None
    monkeypatch.setattr(ov_install, "cpu_capabilities", lambda: ["FP32", "FP16", "INT8"])
    assert unavailable_reason("ov-fp16") is None
