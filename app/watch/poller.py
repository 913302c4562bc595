"""A watcher for locations without OS events (ZIP, FTP, or a folder past the inotify limit).

Every ``interval`` seconds it calls the location's ``scan()`` and diffs the listing against the
previous one. A location may return the very same dict object when nothing changed (a ZIP
archive whose size and mtime are unchanged); the diff is then skipped, so an idle poll costs
only what the location's own ``scan`` costs.

A file that changed in two polls in a row is still being written (an upload in progress): it
is reported unsettled until a poll finds it unchanged, so the engine does not copy every
partial size it sees.

A poll that fails is reported once (an UNAVAILABLE change) and polling ends: the outage is the
engine's to handle (:meth:`app.engine.slot.Slot.fail` logs it, records it and paces the
attempts to reopen), and a reopened location gets a new watcher. So a server that is down is
not knocked on by the poller every ``interval`` besides the engine's own attempts.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from app.errors import FileSyncError
from app.watch.change import Change, ChangeKind
from app.watch.watcher import Watcher
from app.watch.writes import Writing

if TYPE_CHECKING:
    from app.locations.base import FileMeta, Listing, Location
    from app.watch.change import ChangeSink

log = logging.getLogger(__name__)


def diff_listings(location: str, old: Listing, new: Listing) -> list[Change]:
    """Return a FILE change for every path added, removed or changed between two listings."""
    changes = [
        Change(location, ChangeKind.FILE, path, from_scan=True)
        for path, meta in new.items()
        if old.get(path) != meta
    ]
    changes.extend(
        Change(location, ChangeKind.FILE, path, from_scan=True) for path in old if path not in new
    )
    return changes


def _with(listing: Listing, updates: dict[str, FileMeta | None]) -> Listing:
    """``listing`` with ``updates`` applied, as a new dict (or the same one if none)."""
    if not updates:
        return listing
    result = dict(listing)
    for path, meta in updates.items():
        if meta is None:
            result.pop(path, None)
        else:
            result[path] = meta
    return result


class PollingWatcher(Watcher):
    """Polls ``location.scan()`` in a daemon thread and pushes the differences to ``sink``."""

    def __init__(self, location: Location, sink: ChangeSink, interval: float) -> None:
        self.location = location
        self.sink = sink
        self.interval = max(0.05, interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous: Listing | None = None
        self._lock = threading.Lock()
        #: What the engine did while a scan was running (None when no scan runs).
        self._during_scan: dict[str, FileMeta | None] | None = None
        #: Paths changed in the last poll, and since when those changed in polls in a row.
        self._changed: set[str] = set()
        self._growing: dict[str, float] = {}
        self._last_poll = time.monotonic()

    def start(self) -> None:
        """Take the baseline listing now, then poll in the background."""
        self._poll_once()
        self._thread = threading.Thread(
            target=self._run, name=f"poll {self.location.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and join the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def expect(self, path: str, meta: FileMeta | None) -> None:
        """Make the baseline show what the engine just did (a copy: listings are shared)."""
        with self._lock:
            if self._previous is not None:
                self._previous = _with(self._previous, {path: meta})
            if self._during_scan is not None:
                self._during_scan[path] = meta

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll_once()

    def _poll_once(self) -> None:
        key = self.location.key
        with self._lock:
            self._during_scan = {}
        try:
            listing = self.location.scan()
        except Exception as exc:  # a watcher thread must never die silently
            if not isinstance(exc, FileSyncError):
                log.exception("polling %s failed", self.location.name)
            self._stop.set()  # the engine reopens the location with a new watcher
            self.sink(Change(key, ChangeKind.UNAVAILABLE, error=str(exc)))
            return
        with self._lock:
            # The scan may predate what the engine did meanwhile: keep that in the baseline.
            during, self._during_scan = self._during_scan or {}, None
            previous, self._previous = self._previous, _with(listing, during)
        changes = (
            [] if previous is None or previous is listing else diff_listings(key, previous, listing)
        )
        self._note_growth({c.path for c in changes if c.path in listing})
        for change in changes:
            self.sink(change)

    def _note_growth(self, changed: set[str]) -> None:
        now = time.monotonic()
        with self._lock:
            self._growing = {
                p: self._growing.get(p, self._last_poll) for p in changed & self._changed
            }
            self._changed = changed
            self._last_poll = now

    def unsettled(self, path: str) -> Writing | None:
        """A file that changed in the last two polls is still being written."""
        with self._lock:
            since = self._growing.get(path)
        if since is None:
            return None
        return Writing(time.monotonic() - since, self.interval)
