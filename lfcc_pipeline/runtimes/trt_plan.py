"""TensorRT decisions that need no TensorRT: which ONNX, network flags and builder flags per
version and precision, optimization-profile shapes, and whether an engine fits this machine.

Facts (NVIDIA TensorRT docs and migration guides 8.6 -> 10.x -> 11.x):
- 8.6: ONNX needs the EXPLICIT_BATCH network flag; FP16/INT8 are builder flags (weakly typed);
  an explicit-quantization (Q/DQ) network still needs the INT8 flag, plus FP16 for the rest.
- 10.x: networks are always explicit batch (the flag is ignored); FP16 from an FP32 ONNX works
  through the FP16 builder flag. A Q/DQ model is built weakly typed with the INT8 and FP16 flags,
  like 8.6: in a strongly typed network every tensor keeps its ONNX type, and our Q/DQ models are
  FP32 outside the INT8 regions (so that ONNX Runtime previews their accuracy faithfully), so
  strong typing would run every unquantized layer in FP32. Weak typing is deprecated from 10.12
  but still builds. Implicit INT8 calibrators are deprecated since 10.1 and not used here.
  `--strongly-typed` builds 10.x as 11.x does: the STRONGLY_TYPED network flag, no precision
  builder flags (setting layer precisions is not allowed in such a network), and the ONNX in the
  precision wanted (FP16 ONNX; Q/DQ with FP16 outside, calib/<model>.int8.trt-fp16.onnx).
  8.6 has no STRONGLY_TYPED flag (it came with 9.x).
- 11.x: strongly typed only; the FP16/INT8/... builder flags are gone, so FP16 needs an FP16 ONNX
  (modelopt AutoCast or an equivalent converter) and INT8 a Q/DQ ONNX, whose unquantized layers
  run in the precision the ONNX gives them: the build parses calibrate's FP16-outside-Q/DQ form
  (calib/<model>.int8.trt-fp16.onnx, calib/qdq_fp16.py) where it exists, else the FP32-outside one.
- JetPack 6 ships TensorRT 10.3: the 10.x rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lfcc_pipeline.core.errors import ConfigError, TargetUnavailable

PRECISIONS = ("fp32", "fp16", "int8")


def major_version(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise TargetUnavailable(f"cannot read the TensorRT version {version!r}", "reinstall TensorRT") from None


@dataclass(frozen=True)
class BuildPlan:
    precision: str
    onnx_kind: str  # fp32 | fp16 | qdq: which ONNX the builder must parse
    network_flags: tuple[str, ...]  # NetworkDefinitionCreationFlag names
    builder_flags: tuple[str, ...]  # BuilderFlag names
    strongly_typed: bool
    notes: tuple[str, ...] = field(default_factory=tuple)


def plan_build(trt_version: str, precision: str, strongly_typed: bool = False) -> BuildPlan:
    """What to build for `precision` with TensorRT `trt_version` (`strongly_typed`: --strongly-typed on 10.x)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown TensorRT precision {precision!r}", f"choose one of {', '.join(PRECISIONS)}")
    major = major_version(trt_version)
    if major < 8 or (major == 8 and _minor(trt_version) < 6):
        raise TargetUnavailable(
            f"TensorRT {trt_version} is too old (supported: 8.6, 10.x, 11.x)",
            "install TensorRT 8.6, 10.x or 11.x",
        )
    if major >= 11:  # strongly typed only: precision lives in the ONNX graph
        kind = {"fp32": "fp32", "fp16": "fp16", "int8": "qdq"}[precision]
        notes = ["TensorRT 11 is strongly typed: no precision flags"]
        if precision == "int8":
            notes.append("layers outside the Q/DQ regions run in the ONNX's own precision")
        return BuildPlan(precision, kind, (), (), True, tuple(notes))
    if strongly_typed and major < 10:
        raise ConfigError(f"--strongly-typed needs TensorRT 10 or newer; this is TensorRT {trt_version}",
                          "drop --strongly-typed, or install TensorRT 10.x or 11.x")  # fmt: skip
    if major >= 10 and strongly_typed:
        kind = {"fp32": "fp32", "fp16": "fp16", "int8": "qdq"}[precision]
        notes = ["strongly typed (--strongly-typed): no precision flags, the ONNX's own types"]
        return BuildPlan(precision, kind, ("STRONGLY_TYPED",), (), True, tuple(notes))
    if major >= 10:
        if precision == "int8":
            return BuildPlan(precision, "qdq", (), ("INT8", "FP16"), False, ("Q/DQ model, INT8 and FP16 flags",))
        flags = ("FP16",) if precision == "fp16" else ()
        return BuildPlan(precision, "fp32", (), flags, False)
    # 8.6
    if precision == "int8":
        return BuildPlan(precision, "qdq", ("EXPLICIT_BATCH",), ("INT8", "FP16"), False, ("Q/DQ model, INT8 flag",))
    flags = ("FP16",) if precision == "fp16" else ()
    return BuildPlan(precision, "fp32", ("EXPLICIT_BATCH",), flags, False)


def _minor(version: str) -> int:
    parts = version.split(".")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


@dataclass(frozen=True)
class Profile:
    """Optimization profile for the dynamic batch axis of an NCHW input."""

    min_batch: int
    opt_batch: int
    max_batch: int
    channels: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ConfigError(
                f"batch profile must satisfy 1 <= min <= opt <= max, got {self.min_batch}/{self.opt_batch}/{self.max_batch}",
                "fix --min-batch/--opt-batch/--max-batch",
            )

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        c, h, w = self.channels, self.height, self.width
        return (self.min_batch, c, h, w), (self.opt_batch, c, h, w), (self.max_batch, c, h, w)

    def check_batch(self, n: int) -> None:
        if not self.min_batch <= n <= self.max_batch:
            raise ConfigError(
                f"batch {n} is outside the engine's profile {self.min_batch}..{self.max_batch}",
                "rebuild with a wider --min-batch/--max-batch",
            )


def input_profile(onnx_shape: list[int | str | None], min_batch: int, opt_batch: int, max_batch: int) -> Profile:
    """A Profile for an ONNX input shape like ['batch', 3, 224, 224] (only the batch may be dynamic)."""
    if len(onnx_shape) != 4:
        raise ConfigError(
            f"expected an NCHW image input, the ONNX input has shape {onnx_shape}", "export an image classifier"
        )
    c, h, w = onnx_shape[1:]
    if not all(isinstance(d, int) and d > 0 for d in (c, h, w)):
        raise ConfigError(f"only the batch axis may be dynamic, the ONNX input has shape {onnx_shape}",
                          "export with a fixed image size")  # fmt: skip
    if isinstance(onnx_shape[0], int) and onnx_shape[0] > 0:  # static batch
        n = onnx_shape[0]
        return Profile(n, n, n, c, h, w)
    return Profile(min_batch, opt_batch, max_batch, c, h, w)


def engine_mismatch(meta: dict, trt_version: str, compute_capability: str, gpu_name: str) -> str | None:
    """Why an engine built as `meta` describes cannot run here, or None. Engines are tied to the
    exact TensorRT version and the GPU's compute capability unless built version/hardware compatible."""
    built_v, built_cc = meta.get("tensorrt"), meta.get("compute_capability")
    if built_v != trt_version and not meta.get("version_compatible"):
        return f"it was built with TensorRT {built_v}, this machine has {trt_version}"
    if built_cc != compute_capability and not meta.get("hardware_compatible"):
        return (f"it was built for {meta.get('gpu', '?')} (compute capability {built_cc}), "
                f"this machine has {gpu_name} ({compute_capability})")  # fmt: skip
    return None


# NVIDIA's "Working with DLA" pages: DLA builds with TensorRT 8.6 and 10.x up to 10.7 (JetPack 5/6 ship
# 8.5/10.3); 10.8+ and 11.0-11.4.0 have no DLA; 11.4.1+ brings strongly typed DLA builds back (AGX Orin).
# DLA runs FP16 and INT8 layers only, with static shapes; the GPU runs what DLA cannot (GPU_FALLBACK).
DLA_SUPPORT = "TensorRT 8.6, 10.0-10.7 (JetPack 6 ships 10.3) or 11.4.1+"


def dla_supported(trt_version: str) -> bool:
    major, minor = major_version(trt_version), _minor(trt_version)
    patch = trt_version.split(".")[2] if trt_version.count(".") >= 2 else "0"
    patch_n = int(patch) if patch.isdigit() else 0
    if major == 8:
        return minor >= 6
    if major == 10:
        return minor <= 7
    return major > 11 or (major == 11 and (minor > 4 or (minor == 4 and patch_n >= 1)))


def check_dla(trt_version: str, precision: str, profile: Profile, dla_core: int) -> None:
    """ConfigError/TargetUnavailable (one line) unless `dla_core` can build this engine here."""
    if dla_core < 0:
        raise ConfigError(f"--dla-core {dla_core} is negative", "use 0 or 1 (the DLA core to run on)")
    if precision == "fp32":
        raise ConfigError("--dla-core with trt-fp32: DLA runs FP16 and INT8 layers only",
                          "use --target trt-fp16 or trt-int8 with --dla-core")  # fmt: skip
    if not dla_supported(trt_version):
        raise TargetUnavailable(f"TensorRT {trt_version} cannot build for DLA (DLA needs {DLA_SUPPORT})",
                                "install a TensorRT version with DLA support, or drop --dla-core")  # fmt: skip
    if profile.min_batch != profile.max_batch:
        raise ConfigError(
            f"--dla-core needs a static input shape, the profile spans batch {profile.min_batch}..{profile.max_batch}",
            "set --min-batch, --opt-batch and --max-batch to the same value (e.g. 1)",
        )
