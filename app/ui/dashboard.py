"""The desktop app's dashboard: the same web page and API as ``filesync run --web``.

Served on ``127.0.0.1:8390`` (a free port when that one is taken). Status and pause, resume
and sync go straight to the facade; adding and removing a location go through the Tk thread
as commands, so the settings file follows exactly as with the dialog and the menu.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from app.config import Config
from app.engine.status import Activity, EngineStatus
from app.errors import FileSyncError
from app.locations.base import Location
from app.locations.spec import LocationSpec
from app.ui.commands import Action, CommandQueue
from app.ui.facade import SyncFacade
from app.ui.form import InUse
from app.web.bind import DEFAULT_HOST, DEFAULT_PORT, Bind
from app.web.control import UnknownLocation
from app.web.server import DashboardServer

log = logging.getLogger(__name__)


class DesktopControls:
    """:class:`app.web.control.Controls` over the desktop app (any thread)."""

    def __init__(
        self,
        facade: SyncFacade,
        commands: CommandQueue,
        config: Callable[[], Config],
        state_dir: Path,
        log_file: Path,
    ) -> None:
        self._facade = facade
        self._commands = commands
        self._config = config
        self._state_dir = state_dir
        self._log_file = log_file

    def status(self) -> EngineStatus:
        """The engine's snapshot."""
        return self._facade.status()

    def specs(self) -> tuple[LocationSpec, ...]:
        """The configured locations."""
        return self._config().locations

    def in_use(self) -> InUse:
        """What a new location must not overlap."""
        return InUse(self.specs(), self._state_dir, self._log_file)

    def pause(self) -> None:
        """Pause syncing."""
        self._facade.pause()

    def resume(self) -> None:
        """Resume syncing."""
        self._facade.resume()

    def sync_now(self) -> None:
        """Rescan everything now."""
        self._facade.sync_now()

    def add_location(self, spec: LocationSpec) -> None:
        """Saved and added by the Tk thread, like a location from the dialog."""
        self._commands.post(Action.ADD_FROM_DASHBOARD, spec.key, spec)

    def remove_location(self, key: str) -> None:
        """Removed by the Tk thread, like the menu's Remove."""
        if key not in {s.key for s in self.specs()}:
            raise UnknownLocation(f"{key} is not a synced location")
        self._commands.post(Action.REMOVE_LOCATION, key)

    def add_listener(self, callback: Callable[[Activity], None]) -> None:
        """Receive every activity record."""
        self._facade.add_listener(callback)

    def locations(self) -> tuple[Location, ...]:
        """The synced locations, for listing and restoring versions."""
        return self._facade.locations()


def serve_dashboard(controls: DesktopControls, state_dir: Path) -> DashboardServer | None:
    """Start the dashboard on the usual port, or a free one; None (logged) if it cannot run."""
    for port in (DEFAULT_PORT, 0):
        try:
            server = DashboardServer(controls, state_dir, Bind(DEFAULT_HOST, port))
            log.info("dashboard: %s", server.start())
            return server
        except FileSyncError as exc:
            log.warning("%s", exc)
    return None
