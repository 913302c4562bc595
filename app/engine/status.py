"""Plain-data snapshots of what the engine is doing, for the tray, the CLI and tests.

These are immutable values: a front end polls :meth:`Engine.status` and never reaches into the
engine's own objects, so it cannot race with the engine thread.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple

#: Records one line of recent activity: ``(action, path, location, detail)``.
Recorder = Callable[[str, str, str, str], None]


class LocationState(enum.Enum):
    """The state of one location, as the tray shows it."""

    OK = "ok"
    SYNCING = "syncing"
    UNAVAILABLE = "unavailable"
    ERROR = "error"


class LocationStatus(NamedTuple):
    """One location's row in the status window."""

    key: str
    name: str
    kind: str
    state: LocationState
    last_sync: float | None = None
    pending: int = 0
    last_error: str = ""
    file_count: int = 0


class Activity(NamedTuple):
    """One thing the engine did: ``action`` is copied, deleted, renamed, conflict, held, error."""

    time: float
    action: str
    path: str
    location: str
    detail: str = ""


class EngineStatus(NamedTuple):
    """Everything a front end shows: per-location rows, recent activity, global flags."""

    locations: tuple[LocationStatus, ...] = ()
    activity: tuple[Activity, ...] = ()
    paused: bool = False
    syncing: bool = False
    pending: int = 0
    last_sync: float | None = None
    error: str = ""  # an engine-wide problem (the state index cannot be saved), else empty
