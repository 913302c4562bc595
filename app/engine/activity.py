"""The activity log: the last few hundred things the engine did, for the front ends.

Every copy, delete, rename, held delete and error is one :class:`~app.engine.status.Activity`
record. The engine thread records; the status window, the tray and the web dashboard read a
snapshot or listen. Copies, deletes and renames also go to the log file, one line each.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from app.engine.status import Activity
from app.messages import shown

log = logging.getLogger(__name__)

#: How many records the front ends can look back on.
KEEP = 200
#: The actions that also get a line in the log.
_LOGGED = frozenset(("copied", "deleted", "renamed"))


class ActivityLog:
    """The recent activity records and the listeners told of each new one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: deque[Activity] = deque(maxlen=KEEP)
        self._listeners: list[Callable[[Activity], None]] = []

    def record(self, action: str, path: str, location: str, detail: str) -> None:
        """Keep one record and tell every listener (a failing listener is only logged)."""
        entry = Activity(time.time(), action, path, location, detail)
        with self._lock:
            self._records.append(entry)
        if action in _LOGGED and log.isEnabledFor(logging.INFO):
            log.info("%s %s in %s %s", action, shown(path), location, detail)
        for listener in list(self._listeners):
            try:
                listener(entry)
            except Exception:
                log.exception("activity listener failed")

    def recent(self) -> tuple[Activity, ...]:
        """The kept records, oldest first."""
        with self._lock:
            return tuple(self._records)

    def add_listener(self, callback: Callable[[Activity], None]) -> None:
        """Call ``callback`` (from the engine thread) for every new record."""
        self._listeners.append(callback)
