"""Activity records numbered in order, so a client can ask for everything after the last one
it saw (``GET /api/activity?since=N``, and the live stream resuming after a reconnect).

The engine calls :meth:`ActivityFeed.add` from its own thread; readers take copies under a
lock. Only the newest ``keep`` records are kept, as the engine keeps only its recent activity.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from app.engine.status import Activity


@dataclass(frozen=True)
class Numbered:
    """One activity record with its sequence number (1, 2, 3, … since this start)."""

    seq: int
    activity: Activity

    def as_json(self) -> dict[str, Any]:
        """The record as the API shows it."""
        a = self.activity
        return {
            "seq": self.seq,
            "time": a.time,
            "action": a.action,
            "path": a.path,
            "location": a.location,
            "detail": a.detail,
        }


class ActivityFeed:
    """The numbered log; :meth:`add` is an engine listener."""

    def __init__(self, keep: int = 1000) -> None:
        self._lock = threading.Lock()
        self._records: deque[Numbered] = deque(maxlen=keep)
        self._last = 0

    def add(self, activity: Activity) -> None:
        """Number and keep one record (called from the engine thread)."""
        with self._lock:
            self._last += 1
            self._records.append(Numbered(self._last, activity))

    @property
    def last(self) -> int:
        """The number of the newest record (0 before the first)."""
        with self._lock:
            return self._last

    def since(self, seq: int) -> list[Numbered]:
        """Every kept record numbered above ``seq``, oldest first.

        A number above the newest comes from before a restart (numbering starts again at 1):
        then every kept record is new to the caller.
        """
        with self._lock:
            if seq > self._last:
                seq = 0
            if seq == self._last:
                return []
            return [r for r in self._records if r.seq > seq]
