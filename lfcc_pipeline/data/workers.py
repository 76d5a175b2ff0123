"""`--workers auto`: data loader processes from the CPUs this process may use, shared among the
processes torchrun starts on this node, one CPU left for the process that trains."""

from __future__ import annotations

import logging
import os

_logger = logging.getLogger(__name__)
MAX_AUTO = 32
_told: set[tuple[int, int, int]] = set()  # what was logged already (one line per process and choice)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def auto_workers(cpus: int | None = None, procs_per_node: int | None = None) -> int:
    """max(1, CPUs per process - 1), at most MAX_AUTO; logs what it chose (once per process and choice)."""
    cpus = usable_cpus() if cpus is None else cpus
    if procs_per_node is None:
        procs_per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    share = max(1, cpus // max(1, procs_per_node))
    n = max(1, min(share - 1, MAX_AUTO))
    if (cpus, procs_per_node, n) not in _told:
        _told.add((cpus, procs_per_node, n))
        per = f", {procs_per_node} processes on this node" if procs_per_node > 1 else ""
        _logger.info("data: --workers auto -> %d loader process(es) (%d CPU(s)%s)", n, cpus, per)
    return n


def resolve_workers(workers: int | None) -> int:
    """The number of loader processes for a `data.workers` value (None: auto)."""
    return auto_workers() if workers is None else workers
