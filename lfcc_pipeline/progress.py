"""Progress bars on a terminal; silent in logs (LFCC_PROGRESS=1 forces them on)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def progress(iterable: Iterable[Any] | None = None, desc: str = "", total: int | None = None, **kw: Any) -> tqdm:
    show = sys.stderr.isatty() or os.environ.get("LFCC_PROGRESS", "") not in ("", "0")
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
