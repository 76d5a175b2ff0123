"""The pipeline's stages in order; each is independent and talks to the others through artifacts."""

from __future__ import annotations

from lfcc_pipeline.pipeline.stage import Stage
from lfcc_pipeline.stages import bench, build, bundle, calibrate, distill, export, teacher

ORDER: tuple[Stage, ...] = (
    teacher.STAGE, distill.STAGE, export.STAGE, calibrate.STAGE, build.STAGE, bench.STAGE, bundle.STAGE
)  # fmt: skip
BY_NAME: dict[str, Stage] = {s.name: s for s in ORDER}
