"""Unreadable image files: a cheap header check when a folder is scanned, and the record of the
files a stage skipped (--skip-bad-images) instead of failing on them."""

from __future__ import annotations

from pathlib import Path

from lfcc_pipeline.core.errors import DataError

# the first bytes of every format the image suffixes name (PIL decodes by content, not by suffix,
# so any known signature passes: ImageNet has PNGs named .JPEG)
_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    *(b"P" + bytes([c]) for c in b"123456"),  # PBM/PGM/PPM
)
SHOW = 3  # files named in a message


def header_problem(path: Path, size: int) -> str | None:
    """Why `path` (of `size` bytes) cannot be an image, from its size and first bytes; None if it may be one.

    This reads 12 bytes per file: it catches empty files and files of another kind, not a truncated image
    (that one is caught when it is decoded)."""
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    return header_problem_bytes(head, size)


def header_problem_bytes(head: bytes, size: int) -> str | None:
    """Why an image of `size` bytes that starts with `head` (its first 12 bytes) cannot be one; None if it may."""
    if size == 0:
        return "empty file (0 bytes)"
    if head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return None
    return "not an image file (unknown header)"


class SkippedImages:
    """The unreadable files a stage skipped, each with why, in the order met (each file once)."""

    def __init__(self, found: tuple[tuple[Path, str], ...] = ()) -> None:
        self.files: dict[Path, str] = {}
        for path, why in found:
            self.add(path, why)

    def add(self, path: Path, why: str) -> None:
        self.files.setdefault(Path(path), why)

    def __len__(self) -> int:
        return len(self.files)

    def first(self, n: int = SHOW) -> list[str]:
        return [f"{p} ({why})" for p, why in list(self.files.items())[:n]]

    def line(self) -> str:
        """`skipped N unreadable image(s): a (why), b (why), ...`"""
        more = f" and {len(self) - SHOW} more" if len(self) > SHOW else ""
        return f"skipped {len(self)} unreadable image(s): {', '.join(self.first())}{more}"

    def metrics(self) -> dict:
        return {"skipped_images": len(self), "skipped_files": [str(p) for p in list(self.files)[:20]]}


def unreadable_error(bad: list[tuple[Path, str]]) -> DataError:
    """The one line for unreadable images when they are not to be skipped."""
    path, why = bad[0]
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    return DataError(
        f"unreadable image {path}: {why}{more}",
        "remove or replace the file, or pass --skip-bad-images to skip such files",
    )
