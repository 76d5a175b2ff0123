"""Progress bars on a terminal (silent in logs; LFCC_PROGRESS=1 forces them on) and the log format."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def progress(iterable: Iterable[Any] | None = None, desc: str = "", total: int | None = None, **kw: Any) -> tqdm:
    from lfcc_pipeline.core.distributed import current

    show = (sys.stderr.isatty() or os.environ.get("LFCC_PROGRESS", "") not in ("", "0")) and current().is_main
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        leave=False,
        dynamic_ncols=True,
        disable=not show,
        mininterval=0.2,
        file=sys.stderr,
        **kw,
    )


def setup_logging(debug: bool = False) -> None:
    """Plain `message` lines on stderr from the lfcc_pipeline loggers (INFO, or DEBUG with --debug)."""
    logger = logging.getLogger("lfcc_pipeline")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False
