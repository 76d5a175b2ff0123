"""Typed errors. Library code raises these; only the CLI turns them into a line and an exit code."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # a write failed for lack of space, not a bug


class LfccError(Exception):
    """An error the user can fix: the message says what is wrong and what to do."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        """The one line shown to the user."""
        return f"{self.message}; {self.hint}" if self.hint else self.message

    def __str__(self) -> str:
        return self.line()


class ConfigError(LfccError):
    """An option value that cannot work (unknown name, bad number, incompatible choices)."""


class DataError(LfccError):
    """A dataset that is missing, unreadable, empty or unsuitable."""


class ModelError(LfccError):
    """A model name, weights file or image size that does not work."""


class TargetUnavailable(LfccError):
    """A deployment target whose runtime or hardware is missing on this machine."""


class ArtifactError(LfccError):
    """A run-directory artifact that is missing, corrupt or cannot be written."""


class RunLocked(LfccError):
    """Another process holds the run directory."""


class StageFailed(LfccError):
    """A stage ran but its result fails a check (parity, accuracy gate, NaN loss)."""

    exit_code = 1


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), or its type's name."""
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


@contextmanager
def tool_failures(what: str, hint: str) -> Iterator[None]:
    """Turn whatever a third-party tool (exporter, quantizer, converter) raises into one line:
    StageFailed(f"{what} failed: <first line>", hint). Our own ConfigError/StageFailed pass through,
    and so does a full disk (the CLI says to free some space)."""
    try:
        yield
    except (ConfigError, StageFailed):
        raise
    except Exception as e:  # tools raise many types; name the tool and the cause
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise
        raise StageFailed(f"{what} failed: {first_line(e)}", hint) from e
