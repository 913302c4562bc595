"""The engine's bookkeeping for one location: its last-known files, state and counters.

It is also the one owner of "this location is unavailable": :meth:`Slot.fail` and
:meth:`Slot.recovered` set the state, write one log line per transition (not per retry),
record the activity and keep the schedule of attempts to reopen it. Backends only retry
their own connection (``ftp/client.py`` reconnects once); everything longer is decided here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from app.engine.status import LocationState, LocationStatus, Recorder
from app.engine.workers import Late, Worker
from app.errors import FileSyncError, LocationBusy
from app.locations.base import FileMeta, Listing, Location
from app.watch.watcher import Watcher

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds before the first attempt to reopen an unavailable location; every failed attempt
#: doubles the pause, up to :data:`REOPEN_MAX`, and it starts over once the location is back.
REOPEN_FIRST = 1.0
REOPEN_MAX = 60.0


def _not_recorded(action: str, path: str, location: str, detail: str) -> None:
    """The recorder of a slot nobody listens to."""


class Slot:
    """One location as the engine tracks it. Only the engine thread mutates a slot.

    A plain class, not a dataclass: it is a service object compared by identity, and every
    start would pay for a dataclass's generated methods (0.7 ms).
    """

    def __init__(self, location: Location, *, record: Recorder = _not_recorded) -> None:
        self.location = location
        #: The last-known meta of every file in this location (its rows of the state index).
        self.known: dict[str, FileMeta] = {}
        self.watcher: Watcher | None = None
        self.state = LocationState.SYNCING
        self.error = ""
        self.last_sync: float | None = None
        self.held_deletes: set[str] = set()
        self.stale: set[str] = set()
        self.writes = 0
        self.deletes = 0
        self.renames = 0
        self.pending = 0
        #: When to try to reopen it while unavailable (monotonic), and the pause after that.
        self.next_retry = 0.0
        self.retry_delay = REOPEN_FIRST
        #: Where its outages and recoveries are recorded (the engine's activity log).
        self.record = record
        #: Paths this location refused to take (read-only, full, ...), with the attempts so far.
        self.failing: dict[str, int] = {}
        #: The thread that runs this location's I/O (see :mod:`app.engine.workers`).
        self.worker = Worker(location.name)
        #: Paths to sync again once the stalled location answers; ``needs_full``: rescan it all.
        self.parked: set[str] = set()
        self.needs_full = False
        #: A scan that answered after its deadline, used by the catch-up instead of scanning
        #: again.
        self.late_listing: Listing | None = None
        #: Stats that answered after their deadline, likewise.
        self.late_stats: dict[str, FileMeta | None] = {}
        #: A scan started ahead of the first full sync (it runs while the index rows load).
        self.prefetched: Future[Listing] | None = None
        #: The location's index key: read a dozen times per path, so a plain attribute (a
        #: property through the location's own property cost two calls each time).
        self.key: str = location.key

    @property
    def available(self) -> bool:
        """True unless the location is unreachable (an ERROR location still syncs)."""
        return self.state is not LocationState.UNAVAILABLE

    def fail(self, exc: BaseException, path: str = "") -> None:
        """The location cannot be reached: stop using it until the next attempt to reopen it.

        The first failure of an outage logs one line and records one activity; a failed
        reopen only doubles the pause before the next one (up to :data:`REOPEN_MAX`).
        """
        if self.available:
            self.state = LocationState.UNAVAILABLE
            self.retry_delay = REOPEN_FIRST
            log.error("%s", exc)
            self.record("error", path, self.location.name, str(exc))
        else:
            self.retry_delay = min(self.retry_delay * 2, REOPEN_MAX)
            log.debug("%s still unavailable: %s", self.location.name, exc)
        self.error = str(exc)
        self.next_retry = time.monotonic() + self.retry_delay

    def recovered(self) -> None:
        """The location opened: use it again; after an outage, say so once and start the
        reopen schedule over."""
        if not self.available:
            log.info("%s is available again", self.location.name)
            self.record("available", "", self.location.name, "available again")
        self.state = LocationState.SYNCING
        self.retry_delay = REOPEN_FIRST
        self.next_retry = 0.0

    def retry_now(self) -> None:
        """Try to reopen an unavailable location at the next chance ("Sync now")."""
        if not self.available:
            self.next_retry = 0.0

    @property
    def ready(self) -> bool:
        """Available and answering: the engine gives it work now."""
        return self.available and not self.worker.stalled

    def run(self, call: Callable[[], T], deadline: float | None, on_late: Late | None = None) -> T:
        """Run ``call`` on this location's worker, marking the location stalled on a timeout.

        An error that does not say which location it comes from is this one's (its ``key``).
        """
        try:
            return self.worker.run(call, deadline, on_late)
        except LocationBusy as exc:
            self.mark_stalled(exc)
            exc.key = exc.key or self.key
            raise
        except FileSyncError as exc:
            exc.key = exc.key or self.key
            raise

    def mark_stalled(self, exc: LocationBusy) -> None:
        """Show that the location is not answering (once per stall in the log)."""
        if self.state is not LocationState.UNAVAILABLE and self.error != str(exc):
            if self.state is not LocationState.ERROR:
                log.warning("%s", exc)
            self.state = LocationState.ERROR
            self.error = str(exc)

    def mark_failed(self, path: str, error: str) -> int:
        """``path`` could not be written or deleted here; return how often that happened."""
        attempts = self.failing.get(path, 0) + 1
        self.failing[path] = attempts
        self.state = LocationState.ERROR
        self.error = error
        return attempts

    def clear_failed(self, path: str) -> None:
        """``path`` caught up here; the error goes once no path is failing any more."""
        cleared = self.failing.pop(path, None) is not None and not self.failing
        if cleared and self.state is LocationState.ERROR and not self.held_deletes:
            self.state = LocationState.OK
            self.error = ""

    def mark_ok(self) -> None:
        """The location synced cleanly; an ERROR set by held deletes or failing paths stays."""
        self.last_sync = time.time()
        if self.held_deletes or self.failing:
            self.state = LocationState.ERROR
        else:
            self.state = LocationState.OK
            self.error = ""

    def snapshot(self) -> LocationStatus:
        """Plain-data status for the front ends."""
        return LocationStatus(
            key=self.key,
            name=self.location.name,
            kind=self.location.kind,
            state=self.state,
            last_sync=self.last_sync,
            pending=self.pending + len(self.parked),
            last_error=self.error,
            file_count=len(self.known),
        )
