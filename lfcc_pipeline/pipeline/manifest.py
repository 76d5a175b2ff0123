"""manifest.json: per stage its status, fingerprint, inputs, outputs (with hashes) and wall time."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from lfcc_pipeline import __version__
from lfcc_pipeline.core.atomic import sha256_file, write_json

_logger = logging.getLogger(__name__)
MANIFEST = "manifest.json"


def fingerprint(config_slice: Any, inputs: dict[str, str]) -> str:
    """hash(config slice, the digests of the stage's inputs, package version)."""
    blob = json.dumps({"config": config_slice, "inputs": inputs, "version": __version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Manifest:
    """The run directory's record of stages; every change is written atomically at once."""

    def __init__(self, run_dir: Path, writable: bool = True, rebuild: bool = True) -> None:
        self.run_dir = run_dir
        self.writable = writable  # False on torchrun ranks other than 0
        self.rebuild = rebuild  # False: a changed artifact is an error, not a reason to rerun
        self.path = run_dir / MANIFEST
        self.stages: dict[str, dict[str, Any]] = {}
        self._previous: dict[str, dict[str, Any] | None] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                self.stages = dict(data.get("stages", {}))
            except (json.JSONDecodeError, OSError, AttributeError):
                _logger.warning("manifest %s is unreadable; every stage will rerun", self.path)

    def save(self) -> None:
        if self.writable:
            write_json(self.path, {"version": __version__, "stages": self.stages})

    def get(self, stage: str) -> dict[str, Any] | None:
        return self.stages.get(stage)

    def start(self, stage: str, fp: str, inputs: dict[str, str]) -> None:
        self._previous[stage] = self.stages.get(stage)
        self.stages[stage] = {
            "status": "running",
            "fingerprint": fp,
            "inputs": inputs,
            "outputs": {},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": None,
        }
        self.save()

    def finish(self, stage: str, outputs: list[str], seconds: float, metrics: dict[str, Any] | None = None) -> None:
        self._previous.pop(stage, None)
        entry = self.stages[stage]
        entry["status"] = "done"
        entry["outputs"] = {rel: sha256_file(self.run_dir / rel) for rel in sorted(outputs)}
        entry["seconds"] = round(seconds, 3)
        if metrics:
            entry["metrics"] = metrics
        self.save()

    def fail(self, stage: str, error: str, seconds: float) -> None:
        """Record a failure. A finished result from before this attempt whose files are still intact
        stays recorded (with the failure noted), so nothing already finished is lost."""
        previous = self._previous.pop(stage, None)
        if previous and previous.get("status") == "done":
            self.stages[stage] = previous
            if self.check_outputs(stage) is None:
                previous["last_failure"] = {"error": error, "seconds": round(seconds, 3)}
                self.save()
                return
        entry = {"status": "failed", "error": error, "seconds": round(seconds, 3)}
        self.stages[stage] = entry
        self.save()

    def invalidate(self, stage: str) -> None:
        if stage in self.stages:
            del self.stages[stage]
            self.save()

    def outputs_digest(self, stage: str) -> str:
        """One digest over a finished stage's output hashes (what downstream fingerprints consume)."""
        outputs = self.stages[stage]["outputs"]
        return hashlib.sha256(json.dumps(outputs, sort_keys=True).encode()).hexdigest()[:16]

    def check_outputs(self, stage: str) -> str | None:
        """None when every recorded output exists with its recorded hash, else what is wrong."""
        entry = self.stages.get(stage) or {}
        for rel, digest in entry.get("outputs", {}).items():
            path = self.run_dir / rel
            if not path.is_file():
                return f"{rel} is missing"
            if sha256_file(path) != digest:
                return f"{rel} changed since it was written"
        return None
