"""What the dashboard may do to a running FileSync, whichever front end runs the engine.

``filesync run`` gives :class:`EngineControls` (the engine itself); the desktop app gives its
own, which routes adding and removing through the app so the settings file follows. The API
sees only :class:`Controls`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from app.engine.status import Activity, EngineStatus
from app.errors import FileSyncError
from app.locations import LocationOptions, open_location
from app.locations.base import Location
from app.locations.spec import LocationSpec
from app.ui.form import InUse


class UnknownLocation(FileSyncError):
    """An API call named a location that is not synced."""


class Controls(Protocol):
    """The running instance, as the API sees it. Every method returns promptly."""

    def status(self) -> EngineStatus: ...
    def specs(self) -> tuple[LocationSpec, ...]: ...
    def in_use(self) -> InUse: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def sync_now(self) -> None: ...
    def add_location(self, spec: LocationSpec) -> None: ...
    def remove_location(self, key: str) -> None: ...
    def add_listener(self, callback: Callable[[Activity], None]) -> None: ...
    def locations(self) -> Sequence[Location]: ...


class EngineLike(Protocol):
    """The part of :class:`app.engine.engine.Engine` that ``filesync run``'s dashboard uses."""

    def status(self) -> EngineStatus: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def sync_now(self) -> None: ...
    def add_location(self, loc: Location) -> None: ...
    def remove_location(self, key: str) -> None: ...
    def add_listener(self, callback: Callable[[Activity], None]) -> None: ...
    def locations(self) -> tuple[Location, ...]: ...


class EngineControls:
    """``filesync run``: the engine directly. Locations added here last until it stops."""

    def __init__(
        self,
        engine: EngineLike,
        specs: Sequence[LocationSpec],
        options: LocationOptions,
        state_dir: Path | None = None,
        log_file: Path | None = None,
    ) -> None:
        self._engine = engine
        self._specs = {s.key: s for s in specs}
        self._options = options
        self._state_dir = state_dir
        self._log_file = log_file
        self._lock = threading.Lock()

    def status(self) -> EngineStatus:
        """The engine's snapshot."""
        return self._engine.status()

    def specs(self) -> tuple[LocationSpec, ...]:
        """The synced locations' specs, in the order they were given."""
        with self._lock:
            return tuple(self._specs.values())

    def in_use(self) -> InUse:
        """What a new location must not overlap."""
        return InUse(self.specs(), self._state_dir, self._log_file)

    def pause(self) -> None:
        """Stop applying changes (they are collected)."""
        self._engine.pause()

    def resume(self) -> None:
        """Resume with a full sync."""
        self._engine.resume()

    def sync_now(self) -> None:
        """Rescan everything now."""
        self._engine.sync_now()

    def add_location(self, spec: LocationSpec) -> None:
        """Sync one more location (its initial sync runs in the engine thread)."""
        with self._lock:
            if spec.key in self._specs:
                raise FileSyncError(f"{spec.redacted} is already synced")
            self._engine.add_location(open_location(spec, self._options))
            self._specs[spec.key] = spec

    def remove_location(self, key: str) -> None:
        """Stop syncing a location; its files stay."""
        with self._lock:
            if key not in self._specs:
                raise UnknownLocation(f"{key} is not a synced location")
            self._engine.remove_location(key)
            del self._specs[key]

    def add_listener(self, callback: Callable[[Activity], None]) -> None:
        """Receive every activity record (from the engine thread)."""
        self._engine.add_listener(callback)

    def locations(self) -> tuple[Location, ...]:
        """The synced locations, for listing and restoring versions (:mod:`app.versions`)."""
        return self._engine.locations()
