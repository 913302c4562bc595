"""The desktop app's brain, in the Tk thread: drains commands, polls status, keeps config.

Every ``POLL_MS`` the Tk thread (via ``after()``) drains the command queue (tray menu, status
window), the facade's events (activity, job outcomes) and, every ``STATUS_MS``, the engine's
status snapshot, which it pushes to the tray and the status window. It is the only writer of
the settings file while the app runs.
"""

from __future__ import annotations

import logging
import time
import tkinter as tk
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from app.autostart import Autostart
from app.config import Config, Secrets, save_config
from app.engine.status import Activity, EngineStatus
from app.errors import FileSyncError
from app.locations.registry import kind_of
from app.locations.spec import LocationSpec
from app.ui.commands import Action, CommandQueue, UiCommand
from app.ui.dashboard import DesktopControls, serve_dashboard
from app.ui.dialog import AddLocationDialog
from app.ui.facade import FacadeEvent, SyncFacade
from app.ui.form import InUse
from app.ui.opener import target_of
from app.ui.status_window import StatusWindow
from app.ui.summary import notification
from app.ui.tray import Tray, TrayModel
from app.web.server import DashboardServer

log = logging.getLogger(__name__)

POLL_MS = 100
STATUS_MS = 500


class DesktopApp:
    """Ties tray, status window, dialog, settings and facade together (Tk thread only)."""

    def __init__(
        self,
        *,
        root: tk.Tk,
        config: Config,
        config_file: Path,
        facade: SyncFacade,
        tray: Tray | None,
        autostart: Autostart,
        log_file: Path,
        commands: CommandQueue,
        opener: Callable[[str], None],
        secrets: Secrets | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.root = root
        self.state_dir = state_dir
        self.config = config
        self.config_file = config_file
        self.facade = facade
        self.tray = tray
        self.autostart = autostart
        self.log_file = log_file
        self.commands = commands
        self.opener = opener
        self.secrets = secrets or Secrets()
        self.status_window = StatusWindow(root, commands)
        self.dialog: AddLocationDialog | None = None
        self.dashboard: DashboardServer | None = None
        self.status = EngineStatus()
        self.messages: list[str] = []
        self.quitting = False
        self._next_status = 0.0
        self._after: str | None = None
        if tray is None:
            # Without a tray the window is the app: closing it quits.
            self.status_window.window.protocol("WM_DELETE_WINDOW", self.request_quit)

    def start(self) -> None:
        """Show the icon, start the engine, and open the dialog if nothing is configured."""
        if self.tray is not None:
            self.tray.start()
            if not self.tray.has_menu:
                log.info("this tray has no menu: a click on the icon opens the status window")
        else:
            self.status_window.show()
        self.facade.start()
        self.start_dashboard()
        if not self.config.locations:
            self.open_add_dialog()
        self._after = self.root.after(POLL_MS, self._tick)

    def start_dashboard(self) -> None:
        """Serve the web dashboard (see :mod:`app.ui.dashboard`); the app runs without it."""
        if self.state_dir is None:
            return
        controls = DesktopControls(
            self.facade, self.commands, lambda: self.config, self.state_dir, self.log_file
        )
        self.dashboard = serve_dashboard(controls, self.state_dir)

    def open_dashboard(self) -> None:
        """Open the dashboard in the browser, logged in."""
        if self.dashboard is None:
            raise FileSyncError("the dashboard is not running (see the log)")
        self.opener(self.dashboard.login_url)

    def _tick(self) -> None:
        self._after = None
        try:
            for command in self.commands.drain():
                self.handle(command)
            for event in self.facade.take_events():
                self._on_event(event)
            if time.monotonic() >= self._next_status:
                self.refresh()
        except Exception:  # one bad refresh must not stop the loop that can still quit
            log.exception("the desktop app's update failed")
        if not self.quitting:
            self._after = self.root.after(POLL_MS, self._tick)

    def refresh(self) -> None:
        """Poll the engine's status and show it in the tray and the status window."""
        self._next_status = time.monotonic() + STATUS_MS / 1000
        try:
            self.status = self.facade.status()
        except Exception:
            log.debug("status not available yet", exc_info=True)
        enabled = self.autostart.is_enabled()
        if self.tray is not None and self.tray.failed:
            log.error("the tray icon stopped; the status window takes its place")
            self.tray = None
            self.status_window.window.protocol("WM_DELETE_WINDOW", self.request_quit)
            self.status_window.show()
        if self.tray is not None:
            self.tray.show(TrayModel(self.status, enabled))
        self.status_window.show_status(self.status, enabled)

    def handle(self, command: UiCommand) -> None:
        """Carry out one command from the menu or the status window."""
        log.debug("command: %s %s", command.action.value, command.key)
        action = command.action
        try:
            if action is Action.SHOW_STATUS:
                self.refresh()
                self.status_window.show()
            elif action is Action.SYNC_NOW:
                self.facade.sync_now()
            elif action is Action.TOGGLE_PAUSE:
                self._toggle_pause()
            elif action is Action.ADD_LOCATION:
                self.open_add_dialog()
            elif action is Action.OPEN_LOCATION:
                self.opener(target_of(self._spec(command.key)))
            elif action is Action.REMOVE_LOCATION:
                self.remove_location(command.key)
            elif action is Action.OPEN_LOG:
                self.opener(str(self.log_file))
            elif action is Action.OPEN_DASHBOARD:
                self.open_dashboard()
            elif action is Action.ADD_FROM_DASHBOARD and command.spec is not None:
                self.add_location(command.spec)
            elif action is Action.TOGGLE_AUTOSTART:
                self.set_autostart(not self.autostart.is_enabled())
            elif action is Action.QUIT:
                self.request_quit()
        except FileSyncError as exc:
            self.tell(str(exc))
        self._next_status = 0.0

    def _toggle_pause(self) -> None:
        if self.facade.status().paused:
            self.facade.resume()
        else:
            self.facade.pause()

    def _spec(self, key: str) -> LocationSpec:
        for spec in self.config.locations:
            if spec.key == key:
                return spec
        raise FileSyncError(f"{key} is not a configured location")

    def open_add_dialog(self) -> AddLocationDialog:
        """Open the add-location dialog, or bring the open one to the front."""
        if self.dialog is not None and not self.dialog.closed:
            self.dialog.window.lift()
            return self.dialog
        keys = frozenset(spec.key for spec in self.config.locations)
        in_use = InUse(self.config.locations, self.state_dir, self.log_file)
        self.dialog = AddLocationDialog(self.root, self.add_location, self.facade, keys, in_use)
        return self.dialog

    def add_location(self, spec: LocationSpec) -> None:
        """Save a new location and add it to the running engine (initial sync, no restart)."""
        self.config = self.config.with_location(spec)
        self._save()
        self.facade.add_location(spec)

    def remove_location(self, key: str) -> None:
        """Stop syncing a location; its files and the other locations' files are kept."""
        spec = self._spec(key)
        self.config = self.config.without_location(key)
        self._save()
        if kind_of(spec).has_password:
            try:
                self.secrets.delete(key)
            except Exception:  # a keyring that cannot delete must not block the removal
                log.warning("could not remove the password of %s from the keyring", key)
        self.facade.remove_location(key)

    def set_autostart(self, enabled: bool) -> None:
        """Turn start at login on or off, and remember the choice in the settings."""
        self.autostart.set_enabled(enabled)
        self.config = replace(self.config, autostart=enabled)
        self._save()

    def _save(self) -> None:
        try:
            save_config(self.config, self.config_file, self.secrets)
        except OSError as exc:
            raise FileSyncError(f"cannot save the settings to {self.config_file}: {exc}") from exc

    def _on_event(self, event: Activity | FacadeEvent) -> None:
        if isinstance(event, FacadeEvent):
            log.info("%s", event.text)
            if event.kind == "failed":
                self.tell(event.text)
            return
        note = notification(event)
        if note is not None and self.tray is not None:
            self.tray.notify(*note)

    def tell(self, text: str) -> None:
        """Report a problem: logged, kept for the status window, and notified if possible."""
        log.warning("%s", text)
        self.messages.append(text)
        if self.tray is not None:
            self.tray.notify("FileSync", text)

    def request_quit(self) -> None:
        """Leave the Tk main loop; :meth:`shutdown` then stops everything."""
        self.quitting = True
        self.root.quit()

    def shutdown(self) -> None:
        """Clean stop: icon removed, engine stopped (index committed), windows destroyed."""
        self.quitting = True
        if self._after is not None:
            self.root.after_cancel(self._after)
            self._after = None
        if self.tray is not None:
            self.tray.stop()
        if self.dashboard is not None:
            self.dashboard.stop()
            self.dashboard = None
        self.facade.stop()
        if self.dialog is not None:
            self.dialog.close()
        self.status_window.destroy()
        log.info("FileSync desktop app stopped")
