"""What the user asked for, as plain values posted from any thread to the Tk thread.

Tray menu callbacks run in the tray backend's thread and status-window buttons in the Tk
thread; both only *post* a :class:`UiCommand` here, and the Tk thread drains the queue with
``after()``. This is the one crossing point between the tray thread and Tk.
"""

from __future__ import annotations

import enum
import queue
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.locations.spec import LocationSpec


class Action(enum.Enum):
    """Every action reachable from the tray menu and the status window."""

    SHOW_STATUS = "show status"
    SYNC_NOW = "sync now"
    TOGGLE_PAUSE = "pause or resume"
    ADD_LOCATION = "add location"
    OPEN_LOCATION = "open location"
    REMOVE_LOCATION = "remove location"
    OPEN_LOG = "open log"
    OPEN_DASHBOARD = "open dashboard"
    ADD_FROM_DASHBOARD = "add a location sent by the dashboard"
    TOGGLE_AUTOSTART = "start at login"
    QUIT = "quit"


@dataclass(frozen=True)
class UiCommand:
    """One request; ``key`` names the location for the per-location actions, ``spec`` the
    location to add for :attr:`Action.ADD_FROM_DASHBOARD`."""

    action: Action
    key: str = ""
    spec: LocationSpec | None = None


class CommandQueue:
    """A thread-safe mailbox: any thread posts, only the Tk thread drains."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[UiCommand] = queue.SimpleQueue()

    def post(self, action: Action, key: str = "", spec: LocationSpec | None = None) -> None:
        """Queue a command; safe from any thread, never blocks."""
        self._queue.put(UiCommand(action, key, spec))

    def drain(self) -> list[UiCommand]:
        """Return every queued command in order (call from the Tk thread)."""
        out: list[UiCommand] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out
