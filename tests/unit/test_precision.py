"""--precision auto on CPU: bf16 autocast where the CPU computes bf16 natively, fp32 elsewhere, and said."""

import logging

import pytest
import torch

from lfcc_pipeline.training import precision as prec
from lfcc_pipeline.training.loop import fit
from tests.unit.test_training_resume import CPU, _setup

X86 = (
    "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n"
)


@pytest.mark.parametrize(
    "cpuinfo, flags",
    [(X86, ["avx512_bf16", "amx_bf16"]), ("flags\t: fpu sse2 avx2 avx512f\n", []),
     ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", ["bf16"]), ("", [])],
)  # fmt: skip
def test_native_bf16_flags_from_cpuinfo(tmp_path, cpuinfo, flags):
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert prec.cpu_bf16_flags(tmp_path / "cpuinfo") == flags


def test_no_cpuinfo_means_no_native_bf16(tmp_path):
    assert prec.cpu_bf16_flags(tmp_path / "absent") == []


def test_auto_on_cpu_follows_the_detection(monkeypatch):
    monkeypatch.setattr(prec, "cpu_bf16_flags", lambda: ["avx512_bf16"])
    assert prec.choose_precision("auto", CPU) == (torch.bfloat16, "auto: this CPU computes bf16 natively (avx512_bf16)")
    assert prec.choose_precision("fp32", CPU)[0] is None  # asked for: kept
    monkeypatch.setattr(prec, "cpu_bf16_flags", lambda: [])
    dtype, why = prec.choose_precision("auto", CPU)
    assert dtype is None and "no native bf16" in why
    assert prec.choose_precision("bf16", CPU)[0] is torch.bfloat16  # asked for: bf16 even where emulated


@pytest.mark.parametrize("flags, chosen", [(["amx_bf16"], "bf16"), ([], "fp32")])
def test_the_training_loop_says_which_it_chose(tmp_path, monkeypatch, caplog, flags, chosen):
    monkeypatch.setattr(prec, "cpu_bf16_flags", lambda: flags)
    seen = []
    real = torch.autocast

    def autocast(device_type, dtype=None, **kw):  # what the training steps actually ran under
        seen.append(dtype)
        return real(device_type, dtype=dtype, **kw)

    monkeypatch.setattr(torch, "autocast", autocast)
    d, args, spec = _setup(tmp_path, epochs=1)
    spec.precision = "auto"
    caplog.set_level(logging.INFO, logger="lfcc_pipeline")
    result = fit(d, *args, CPU, spec)
    assert result.precision == chosen and all(torch.isfinite(torch.tensor(h["train_loss"])) for h in result.history)
    assert seen == ([torch.bfloat16] if chosen == "bf16" else [])
    said = [r.getMessage() for r in caplog.records if "training in" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"t: training in {chosen} (auto: ")
