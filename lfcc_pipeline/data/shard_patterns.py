"""Shard patterns of a `webdataset:` spec -> the tar files they name.

    /data/train-{000000..000146}.tar     a numeric range (zero padding kept, as webdataset writes it)
    /data/{train,extra}-{0..9}.tar       a comma list; braces nest and combine
    /data/train-*.tar                    a glob (sorted)
    file:///data/train-000000.tar        a file:// URL is a local path

Only local files are read: a shard is indexed once (its tar headers) so that every split can be read
by position; remote URLs (http://, s3://, pipe:) would have to be downloaded for that.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

from lfcc_pipeline.core.errors import DataError

_RANGE = re.compile(r"^(\d+)\.\.(\d+)$")
REMOTE = ("http://", "https://", "s3://", "gs://", "pipe:", "hf://")


def expand_braces(pattern: str) -> list[str]:
    """Every string a brace pattern names, in order: `a{1..3}` -> a1 a2 a3, `{x,y}z` -> xz yz."""
    start = pattern.find("{")
    if start < 0:
        if "}" in pattern:
            raise DataError(f"shard pattern {pattern!r} has a '}}' without a '{{'", "e.g. /data/train-{000..146}.tar")
        return [pattern]
    depth, end = 0, -1
    for i in range(start, len(pattern)):
        depth += {"{": 1, "}": -1}.get(pattern[i], 0)
        if depth == 0:
            end = i
            break
    if end < 0:
        raise DataError(f"shard pattern {pattern!r} has an unclosed '{{'", "e.g. /data/train-{000..146}.tar")
    head, body, tail = pattern[:start], pattern[start + 1 : end], pattern[end + 1 :]
    rng = _RANGE.match(body)
    if rng:
        lo, hi = rng.groups()
        if int(hi) < int(lo):
            raise DataError(f"shard range {{{body}}} runs backwards", f"write {{{lo}..{hi}}} low to high")
        width = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
        options = [str(n).zfill(width) for n in range(int(lo), int(hi) + 1)]
    else:
        options = [alt for part in _top_level_split(body) for alt in expand_braces(part)]
    return [head + o + t for o in options for t in expand_braces(tail)]


def _top_level_split(body: str) -> list[str]:
    """`a,{b,c},d` -> [a, {b,c}, d]: commas outside nested braces."""
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    return [*parts, cur]


def shard_files(pattern: str) -> list[Path]:
    """The existing tar files `pattern` names (braces, then globs), in order, each once; a DataError
    when it names none or names files that are missing."""
    pattern = pattern.strip()
    if pattern.startswith(REMOTE):
        raise DataError(
            f"webdataset shards must be local files (got {pattern})",
            "copy the shards to a local disk or mount the bucket (s3fs, gcsfuse) and pass that path",
        )
    if pattern.startswith("file://"):
        pattern = pattern[len("file://") :]
    found: list[Path] = []
    missing: list[str] = []
    for name in expand_braces(pattern):
        name = str(Path(name).expanduser())
        if glob.has_magic(name):
            found += [Path(p) for p in sorted(glob.glob(name)) if Path(p).is_file()]
        elif Path(name).is_file():
            found.append(Path(name))
        else:
            missing.append(name)
    if missing and found:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"shard {missing[0]} does not exist{more}", f"check the pattern {pattern!r}")
    if not found:
        raise DataError(
            f"no tar shards match {pattern!r}",
            "pass webdataset:DIR (DIR/train/*.tar, DIR/val/*.tar) or quoted patterns, "
            "e.g. 'webdataset:/data/train-{000..146}.tar;/data/val-{000..006}.tar'",
        )
    return list(dict.fromkeys(found))
