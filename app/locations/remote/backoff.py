"""Growing pauses between failed connects to a server, shared by the server kinds.

A server that is down must not be hammered by a poll every two seconds, and a wrong password
must not be tried again and again: after a failed connect, calls fail at once with the same
error (same type, so a wrong password stays :class:`AuthenticationFailed`) until the pause is
over. The pause doubles from 1 s up to 60 s and resets after a successful connect.
"""

from __future__ import annotations

import copy
import time

from app.errors import LocationUnavailable

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0


class Backoff:
    """When the next connect may be tried, and the failure that set the pause."""

    def __init__(self) -> None:
        self._pause_s = 0.0
        self._retry_at = 0.0
        self._last: LocationUnavailable | None = None

    def check(self) -> None:
        """Raise the last failure again (saying when the next attempt is) while pausing."""
        last, now = self._last, time.monotonic()
        if last is None or now >= self._retry_at:
            return
        again = copy.copy(last)
        again.message = f"{last.message} (next attempt in {self._retry_at - now:.0f} s)"
        again.args = (again.message,)
        raise again.with_traceback(None)

    def failed(self, exc: LocationUnavailable) -> None:
        """A connect failed with ``exc``: pause twice as long as last time (at most 60 s)."""
        self._last = exc
        self._pause_s = min(BACKOFF_MAX_S, max(BACKOFF_FIRST_S, self._pause_s * 2))
        self._retry_at = time.monotonic() + self._pause_s

    def succeeded(self) -> None:
        """A connect worked: the next failure starts from the shortest pause again."""
        self._last = None
        self._pause_s = 0.0
        self._retry_at = 0.0
