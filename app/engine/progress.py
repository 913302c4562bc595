"""Progress lines for long work (an initial sync of thousands of files)."""

from __future__ import annotations

import logging
import time

_EVERY = 2.0


class Progress:
    """Logs "N/M files, X MiB, Y MiB/s" at most every two seconds, and a summary at the end."""

    def __init__(self, what: str, total: int, log: logging.Logger) -> None:
        self.what = what
        self.total = total
        self.log = log
        self.started = time.monotonic()
        self._last = self.started
        self._files0: int | None = None
        self._bytes0 = 0

    def step(self, done: int, files: int, nbytes: int) -> None:
        """Report progress if two seconds passed since the last line."""
        if self._files0 is None:
            self._files0, self._bytes0 = files, nbytes
        now = time.monotonic()
        if now - self._last < _EVERY:
            return
        self._last = now
        mib = (nbytes - self._bytes0) / 1048576
        rate = mib / max(now - self.started, 1e-9)
        self.log.info(
            "%s: %d/%d paths checked, %d files copied, %.1f MiB (%.1f MiB/s)",
            self.what,
            done,
            self.total,
            files - self._files0,
            mib,
            rate,
        )

    def finish(self, files: int, nbytes: int) -> None:
        """Log the summary line."""
        if self._files0 is None:
            self._files0, self._bytes0 = files, nbytes
        elapsed = time.monotonic() - self.started
        copied = files - self._files0
        level = logging.INFO if copied or elapsed > _EVERY else logging.DEBUG
        self.log.log(
            level,
            "%s: %d paths checked, %d files copied (%.1f MiB) in %.2f s",
            self.what,
            self.total,
            copied,
            (nbytes - self._bytes0) / 1048576,
            elapsed,
        )
