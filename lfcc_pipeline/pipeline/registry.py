"""The stage registry: every stage in run order, and by name."""

from __future__ import annotations

from lfcc_pipeline.core.stage import Stage
from lfcc_pipeline.stages import bench, build, bundle, calibrate, distill, export, teacher

ORDER: tuple[Stage, ...] = (
    teacher.STAGE, distill.STAGE, export.STAGE, calibrate.STAGE, build.STAGE, bench.STAGE, bundle.STAGE
)  # fmt: skip
BY_NAME: dict[str, Stage] = {s.name: s for s in ORDER}
