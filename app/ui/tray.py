"""The tray icon: picture and tooltip follow the engine's state; the menu posts commands.

The pystray icon runs ``icon.run()`` in its own thread (``filesync-tray``), never in the Tk
thread. Menu callbacks and the dynamic texts/check marks run in that thread too, so they only
read :attr:`Tray.model` (an immutable snapshot the Tk thread swaps in) and post
:class:`~app.ui.commands.UiCommand` values; they never touch Tk or the engine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.engine.status import EngineStatus
from app.ui.backends import Backend, import_pystray
from app.ui.commands import Action, CommandQueue
from app.ui.icons import load_icon
from app.ui.summary import TrayState, location_line, tooltip, tray_state

log = logging.getLogger(__name__)

APP_NAME = "filesync"


@dataclass(frozen=True)
class TrayModel:
    """Everything the menu shows, swapped atomically by the Tk thread."""

    status: EngineStatus = field(default_factory=EngineStatus)
    autostart: bool = False

    @property
    def state(self) -> TrayState:
        """The picture to show."""
        return tray_state(self.status)

    @property
    def text(self) -> str:
        """The tooltip and the menu's status line."""
        return tooltip(self.status)


class Tray:
    """A pystray icon in its own thread, driven by :meth:`show` from the Tk thread."""

    def __init__(self, backend: Backend, commands: CommandQueue) -> None:
        self.backend = backend
        self.commands = commands
        self.model = TrayModel()
        self._shown_state: TrayState | None = None
        self._shown_text = ""
        self._shown_menu: tuple[object, ...] = ()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._icon: Any = None
        self._visible = False

    @property
    def has_menu(self) -> bool:
        """False for backends (plain X) where a click opens the status window instead."""
        return self.backend.has_menu

    def start(self) -> None:
        """Run the icon's loop in the ``filesync-tray`` thread and show it."""
        self._thread = threading.Thread(target=self._run, name="filesync-tray", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # The icon is created here so a GTK backend's widgets belong to the thread running
        # their main loop.
        try:
            with self._lock:
                model = self.model
                self._icon = self.backend.icon_class(
                    APP_NAME, icon=load_icon(model.state), title=model.text, menu=self._build_menu()
                )
            self._icon.run(setup=self._setup)
        except Exception:
            log.exception("the tray icon stopped with an error")
        finally:
            self._ready.set()

    def _setup(self, icon: Any) -> None:
        # pystray drops title and picture changes made before the icon is visible, so the
        # latest snapshot is applied again once it is.
        try:
            icon.visible = True
            with self._lock:
                self._visible = True
                self._shown_state, self._shown_text, self._shown_menu = None, "", ()
                self._apply(self.model)
        except Exception:
            log.exception("the tray icon could not be shown")
        finally:
            self._ready.set()

    @property
    def failed(self) -> bool:
        """True when the icon's thread has ended on its own (the backend gave up)."""
        return self._ready.is_set() and self._thread is not None and not self._thread.is_alive()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the icon is shown (or failed); True if it is running."""
        return self._ready.wait(timeout) and self._thread is not None and self._thread.is_alive()

    def show(self, model: TrayModel) -> None:
        """Show a new snapshot: picture, tooltip and menu change only when they differ."""
        with self._lock:
            self.model = model
            if self._visible and self._thread is not None and self._thread.is_alive():
                self._apply(model)

    def _apply(self, model: TrayModel) -> None:
        if model.state is not self._shown_state:
            self._icon.icon = load_icon(model.state)
            self._shown_state = model.state
        if model.text != self._shown_text:
            self._icon.title = model.text
            self._shown_text = model.text
        menu_facts = (
            model.text,
            model.status.paused,
            model.autostart,
            tuple((loc.key, loc.name, loc.state) for loc in model.status.locations),
        )
        if menu_facts != self._shown_menu and self.has_menu:
            self._icon.update_menu()
        self._shown_menu = menu_facts

    @property
    def shown_state(self) -> TrayState | None:
        """The picture the icon was last given (for tests and logs)."""
        return self._shown_state

    def notify(self, title: str, message: str) -> None:
        """A desktop notification where the backend has them; otherwise only logged."""
        log.info("notification: %s: %s", title, message)
        if self.backend.has_notification and self._icon is not None:
            try:
                self._icon.notify(message, title)
            except Exception:  # a missing notification daemon must not break the app
                log.warning("could not show a desktop notification", exc_info=True)

    def stop(self, timeout: float = 10.0) -> None:
        """Remove the icon and join its thread (pystray ignores a stop before its loop runs)."""
        if self._thread is None:
            return
        self._ready.wait(timeout)
        if self._icon is not None:
            try:
                self._icon.visible = False
            except Exception:
                log.debug("hiding the tray icon failed", exc_info=True)
            self._icon.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the tray thread did not stop within %.0f s", timeout)
        elif self._icon is not None and hasattr(self._icon, "release"):
            self._icon.release()
        self._thread = None

    def _post(self, action: Action, key: str = "") -> Callable[[Any, Any], None]:
        def callback(_icon: Any, _item: Any) -> None:
            self.commands.post(action, key)

        return callback

    def _build_menu(self) -> Any:
        pystray = import_pystray()
        item, menu = pystray.MenuItem, pystray.Menu

        def locations() -> Iterator[Any]:
            rows = self.model.status.locations
            if not rows:
                yield item("No locations", None, enabled=False)
            for loc in rows:
                yield item(
                    location_line(loc),
                    menu(
                        item("Open", self._post(Action.OPEN_LOCATION, loc.key)),
                        item("Remove", self._post(Action.REMOVE_LOCATION, loc.key)),
                    ),
                )

        return menu(
            item(lambda _i: self.model.text, None, enabled=False),
            item("Status window…", self._post(Action.SHOW_STATUS), default=True),
            menu.SEPARATOR,
            item("Sync now", self._post(Action.SYNC_NOW)),
            item(
                lambda _i: "Resume" if self.model.status.paused else "Pause",
                self._post(Action.TOGGLE_PAUSE),
            ),
            item("Add location…", self._post(Action.ADD_LOCATION)),
            item("Locations", menu(locations)),
            menu.SEPARATOR,
            item("Open dashboard", self._post(Action.OPEN_DASHBOARD)),
            item("Open log", self._post(Action.OPEN_LOG)),
            item(
                "Start at login",
                self._post(Action.TOGGLE_AUTOSTART),
                checked=lambda _i: self.model.autostart,
            ),
            item("Quit", self._post(Action.QUIT)),
        )
