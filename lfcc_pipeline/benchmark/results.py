"""benchmarks/results/*.json: one JSON object per script, one entry per configuration measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lfcc_pipeline.core.atomic import write_json


def record_result(path: Path, key: str, record: dict[str, Any]) -> None:
    """Add or replace `key` in the results file at `path` (atomically), keeping other entries."""
    existing = json.loads(path.read_text()) if path.is_file() else {}
    existing[key] = record
    write_json(path, existing)
    print(f"wrote {path} [{key}]")
