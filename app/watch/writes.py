"""Which files are still being written, as a folder watcher sees it (issue 9, slow writers).

A download or a video export writes one file for minutes. Copying it at every event would send
dozens of partial versions to the other locations, so the watcher keeps, per path, the *run* of
writes it is seeing: when the run began, when it was last written or closed, whether a writer
has it open, and how many times it was closed. The engine asks :meth:`WriteTracker.unsettled`
before it copies a file, and parks the path while the answer is not None.

A file is settled when nothing wrote to it for :data:`QUIET` seconds, or when its run was one
quick save: opened, written and closed within :data:`QUICK` seconds. An editor's save is
therefore synced at once, while a file written for longer, or reopened for writing within
:data:`QUIET` seconds of its last close (a writer appending chunk by chunk), waits until it has
been quiet for :data:`QUIET` seconds. The bound for files that never go quiet (a busy log) is the
engine's (``settle_bound``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

#: Seconds without a write after which a file counts as settled, whoever still has it open.
QUIET = 2.0
#: A run of writes closed once within this many seconds is an ordinary save, synced at once.
QUICK = 0.5


@dataclass(frozen=True, slots=True)
class Writing:
    """A file that is not settled: how long its run of writes has lasted, and when to look again."""

    lasted: float
    settles_in: float


@dataclass(slots=True)
class _Run:
    started: float
    last: float
    open: bool = True
    closes: int = 0


class WriteTracker:
    """Runs of writes per path, fed by a watcher's thread and read by the engine thread."""

    def __init__(self, quiet: float = QUIET, quick: float = QUICK) -> None:
        self.quiet = quiet
        self.quick = quick
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    def wrote(self, path: str) -> bool:
        """A write (or a create) to ``path``; True when it starts or reopens a run.

        The watcher reports a change only then: the engine parks the path and looks again by
        itself, so the thousands of writes of one big file cost one queue record per run.
        """
        now = time.monotonic()
        with self._lock:
            run = self._runs.get(path)
            if run is None or now - run.last >= self.quiet:
                self._runs[path] = _Run(now, now)
                self._prune(now)
                return True
            reopened = not run.open
            run.open = True
            run.last = now
            return reopened

    def closed(self, path: str) -> None:
        """A writer closed ``path`` (Linux reports closes after writing)."""
        now = time.monotonic()
        with self._lock:
            run = self._runs.get(path)
            if run is None:
                return
            run.open = False
            run.closes += 1
            run.last = now

    def forget(self, path: str) -> None:
        """``path`` was deleted, or renamed (a rename is not a write: the file is whole)."""
        with self._lock:
            self._runs.pop(path, None)

    def unsettled(self, path: str) -> Writing | None:
        """None when ``path`` may be copied now; otherwise how long it has been written."""
        now = time.monotonic()
        with self._lock:
            run = self._runs.get(path)
            if run is None:
                return None
            quiet_for = now - run.last
            if quiet_for >= self.quiet:
                del self._runs[path]
                return None
            if not run.open and run.closes == 1 and run.last - run.started <= self.quick:
                return None
            return Writing(now - run.started, self.quiet - quiet_for)

    def _prune(self, now: float) -> None:
        """Drop runs long settled, so a tree of a million files once written costs nothing."""
        if len(self._runs) > 1000:
            stale = [p for p, r in self._runs.items() if now - r.last >= self.quiet]
            for path in stale:
                del self._runs[path]
