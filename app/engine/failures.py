"""Turning one location's refusal to write or delete into a message a user can act on.

A failing target must not stop the others (issue 9, item 5): :mod:`app.engine.apply` catches
the error per target, and this module words it, naming the path, the cause and what to do.
"""

from __future__ import annotations

import errno

from app.errors import FileSyncError, TargetFailed

#: What to do, by the OS error behind a failed write or delete.
_HINTS = {
    errno.EACCES: "make it writable",
    errno.EPERM: "make it writable",
    errno.EROFS: "it is on a read-only file system; remount it writable",
    errno.ENOSPC: "free some space there",
    errno.EDQUOT: "free some space there (disk quota reached)",
    errno.EISDIR: "move the folder that stands at that name away",
    errno.ENOTDIR: "move the file that stands where a folder is needed away",
    errno.EEXIST: "move the file that stands where a folder is needed away",
}
#: Backoff between retries of a path that failed in one location, in seconds.
RETRY_FIRST = 2.0
RETRY_MAX = 60.0


def target_failed(verb: str, path: str, location: str, exc: BaseException) -> TargetFailed:
    """A :class:`TargetFailed` saying what could not be done to ``path`` and how to fix it."""
    if isinstance(exc, FileSyncError):
        reason = exc.message
        hint = "fix that"
        if "folder stands where the file" in reason:
            hint = "move that folder away"
        elif "file stands where a folder" in reason:
            hint = "move that file away"
    elif isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        hint = _HINTS.get(exc.errno or 0, "check the location")
    else:  # pragma: no cover - only OS and FileSync errors are caught per target
        reason, hint = str(exc), "check the location"
    return TargetFailed(
        f"cannot {verb}: {reason}; {hint}. The other locations have the change; "
        "FileSync retries here",
        location=location,
        path=path,
    )


def retry_delay(attempts: int) -> float:
    """Seconds to wait before retrying a path that failed ``attempts`` times in a row."""
    return min(RETRY_FIRST * 2.0 ** max(0, attempts - 1), RETRY_MAX)
