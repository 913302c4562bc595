"""A short pause after a failed connect to a server, shared by the server kinds.

After a failed connect, calls fail at once with the same error (same type, so a wrong password
stays :class:`AuthenticationFailed`) for :data:`BACKOFF_FIRST_S`, so one burst of commands (a
stat of many paths) does not connect once per command to a server that just refused. The pause
is fixed: the growing pause between attempts during an outage (1 s doubling to 60 s) is the
engine's (:meth:`app.engine.slot.Slot.fail`), whose first pause is as long as this one, so a
reopen is never swallowed by it; the poller stops at its first failure.
"""

from __future__ import annotations

import copy
import time

from app.errors import LocationUnavailable

BACKOFF_FIRST_S = 1.0


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
        """A connect failed with ``exc``: fail at once for the next :data:`BACKOFF_FIRST_S`."""
        self._last = exc
        self._pause_s = BACKOFF_FIRST_S
        self._retry_at = time.monotonic() + self._pause_s

    def succeeded(self) -> None:
        """A connect worked: the next failure starts from the shortest pause again."""
        self._last = None
        self._pause_s = 0.0
        self._retry_at = 0.0
