"""compare's plan: the teacher's run does not depend on the methods' options, so variants share it."""

from pathlib import Path

from lfcc_pipeline.core.config import DataConfig, RunConfig
from lfcc_pipeline.methods import distill_config
from lfcc_pipeline.pipeline.compare import ComparePlan
from lfcc_pipeline.stages import teacher


def _plan(root: str, teacher_root: Path | None = None, **options) -> ComparePlan:
    base = RunConfig(data=DataConfig("fashion-mini"), distill=distill_config(**options))
    return ComparePlan(base, ("none", "lfcc"), (0,), Path(root), teacher_root=teacher_root)


def test_variants_share_the_teacher_run():
    shared = Path("/runs/pair/teacher")
    a = _plan("/runs/pair", shared)
    b = _plan("/runs/pair-lfcc_queue=64", shared, lfcc_queue=64, lfcc_weight=4.0)
    assert a.teacher_config() == b.teacher_config() and a.teacher_config().out == shared
    assert teacher.config_slice(a.teacher_config()) == teacher.config_slice(b.teacher_config())
    assert a.teacher_config().distill.method == "none"
    # the students keep their options and their own run folders
    assert b.run_config("lfcc", 0, shared / "w").distill != a.run_config("lfcc", 0, shared / "w").distill
    assert b.run_config("lfcc", 0, shared / "w").out == Path("/runs/pair-lfcc_queue=64/lfcc-seed0")


def test_teacher_lives_under_the_root_by_default():
    assert _plan("/runs/p").teacher_config().out == Path("/runs/p/teacher")
    assert _plan("/runs/p", ce_weight=0.5).teacher_config().distill.ce_weight == 0.5
