"""The paths the syncer tries again later, and when.

A path is retried when its batch failed unexpectedly, when one location refused it (with a
growing pause, :func:`app.engine.failures.retry_delay`), when it changed while being copied,
or while a copy of it is still being written. The syncer fills this table; the engine thread
asks it what is due and when to wake up, and never edits it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

#: A path that failed for a reason other than a vanished location is tried again after this.
RETRY_FAILED_PATH_AFTER = 5.0


class RetryTable:
    """``(location key, path)`` -> when to plan that path again (monotonic seconds)."""

    def __init__(self) -> None:
        self._due: dict[tuple[str, str], float] = {}

    def later(self, keys: Iterable[str], path: str, delay: float) -> None:
        """Plan ``path`` again in ``delay`` seconds, on behalf of each of ``keys``."""
        when = time.monotonic() + delay
        for key in keys:
            self._due[(key, path)] = when

    def next_at(self) -> float | None:
        """When the next retry is due, or None when nothing waits."""
        return min(self._due.values(), default=None)

    def take_due(self) -> set[str]:
        """Remove and return the paths whose retry is due now."""
        now = time.monotonic()
        due = [kp for kp, t in self._due.items() if t <= now]
        for kp in due:
            del self._due[kp]
        return {path for _, path in due}
