"""TensorRT version branching, profiles and engine compatibility: no TensorRT needed."""

import pytest

from lfcc_pipeline.core.errors import ConfigError, TargetUnavailable
from lfcc_pipeline.runtimes.trt_plan import Profile, engine_mismatch, input_profile, plan_build


@pytest.mark.parametrize(
    "version, precision, onnx_kind, network_flags, builder_flags, strong",
    [
        ("8.6.1", "fp32", "fp32", ("EXPLICIT_BATCH",), (), False),
        ("8.6.1", "fp16", "fp32", ("EXPLICIT_BATCH",), ("FP16",), False),
        ("8.6.1", "int8", "qdq", ("EXPLICIT_BATCH",), ("INT8", "FP16"), False),
        ("10.3.0", "fp16", "fp32", (), ("FP16",), False),  # JetPack 6
        ("10.3.0", "int8", "qdq", (), ("INT8", "FP16"), False),
        ("10.13.2", "fp32", "fp32", (), (), False),
        ("11.0.0", "fp16", "fp16", (), (), True),  # no FP16 flag any more: an FP16 ONNX
        ("11.4.1", "int8", "qdq", (), (), True),
        ("11.4.1", "fp32", "fp32", (), (), True),
    ],
)
def test_build_plan_per_version(version, precision, onnx_kind, network_flags, builder_flags, strong):
    plan = plan_build(version, precision)
    assert (plan.onnx_kind, plan.network_flags, plan.builder_flags, plan.strongly_typed) == (
        onnx_kind, network_flags, builder_flags, strong,
    )  # fmt: skip


@pytest.mark.parametrize("precision, onnx_kind", [("fp32", "fp32"), ("fp16", "fp16"), ("int8", "qdq")])
def test_strongly_typed_trt_10_plans_as_11_with_the_network_flag(precision, onnx_kind):
    plan = plan_build("10.3.0", precision, strongly_typed=True)
    assert (plan.onnx_kind, plan.network_flags, plan.builder_flags, plan.strongly_typed) == (
        onnx_kind, ("STRONGLY_TYPED",), (), True,
    )  # fmt: skip
    assert plan_build("11.1.0", precision, strongly_typed=True) == plan_build("11.1.0", precision)
    with pytest.raises(ConfigError, match="--strongly-typed needs TensorRT 10"):
        plan_build("8.6.1", precision, strongly_typed=True)


def test_trt_11_never_uses_removed_precision_flags():
    for precision in ("fp32", "fp16", "int8"):
        assert plan_build("11.2.0", precision).builder_flags == ()


def test_too_old_and_unknown():
    with pytest.raises(TargetUnavailable, match="too old"):
        plan_build("8.5.3", "fp16")
    with pytest.raises(ConfigError, match="precision"):
        plan_build("10.3.0", "fp8")


def test_profile_shapes_and_checks():
    p = input_profile(["batch", 3, 224, 224], 1, 8, 32)
    assert p.shapes() == ((1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224))
    p.check_batch(32)
    with pytest.raises(ConfigError, match="outside"):
        p.check_batch(33)
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        Profile(4, 2, 8, 3, 32, 32)
    assert input_profile([4, 3, 32, 32], 1, 8, 32).shapes()[0] == (4, 3, 32, 32)  # static batch stays static
    with pytest.raises(ConfigError, match="only the batch"):
        input_profile(["batch", 3, "h", "w"], 1, 1, 1)


def test_engine_mismatch_messages():
    meta = {"tensorrt": "10.3.0", "compute_capability": "8.7", "gpu": "Orin"}
    assert engine_mismatch(meta, "10.3.0", "8.7", "Orin") is None
    assert "TensorRT 10.3.0" in engine_mismatch(meta, "10.13.2", "8.7", "Orin")
    assert "compute capability 8.7" in engine_mismatch(meta, "10.3.0", "8.9", "RTX 4090")
    assert engine_mismatch({**meta, "version_compatible": True}, "10.13.2", "8.7", "Orin") is None
