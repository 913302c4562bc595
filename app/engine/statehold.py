"""Holding the engine while its state index cannot be saved (a full disk, an I/O error).

A copy or delete the index cannot record is worse than one not made: after a restart the
missing rows make a file deleted while FileSync was stopped look new, and it comes back. So
while a save fails the engine applies nothing: changes wait in its backlog, commands here, and
the save is retried with growing pauses. The first save that works ends the hold; the engine
then runs the held commands and a full sync, which catches up on everything seen meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.errors import StateIndexUnwritable

#: Longest pause between two attempts to save a state index that could not be saved.
RETRY_MAX = 30.0


class StateHold:
    """The engine thread's record of a failed save: the error, when to retry, what waits."""

    def __init__(self) -> None:
        self.error: StateIndexUnwritable | None = None
        self.retry_at = 0.0
        self._delay = 1.0
        self._commands: list[Callable[[], None]] = []

    @property
    def active(self) -> bool:
        """True while nothing may be applied."""
        return self.error is not None

    @property
    def message(self) -> str:
        """The one line a user sees while the hold lasts, else empty."""
        if self.error is None:
            return ""
        return f"{self.error}; syncing is paused and resumes by itself once it can be saved"

    def failed(self, exc: StateIndexUnwritable) -> bool:
        """Start or prolong the hold; True when it just started (report it once)."""
        first = self.error is None
        self._delay = 1.0 if first else min(self._delay * 2, RETRY_MAX)
        self.error = exc
        self.retry_at = time.monotonic() + self._delay
        return first

    def due(self) -> bool:
        """True when a hold is on and its next save attempt is due."""
        return self.error is not None and time.monotonic() >= self.retry_at

    def keep(self, command: Callable[[], None]) -> None:
        """Run ``command`` once the hold ends."""
        self._commands.append(command)

    def end(self) -> list[Callable[[], None]]:
        """End the hold; return the commands kept meanwhile, in order."""
        self.error = None
        commands, self._commands = self._commands, []
        return commands
