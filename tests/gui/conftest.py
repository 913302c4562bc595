"""Fixtures for the GUI tests: one Xvfb + trayer + D-Bus session per run, and the app.

The X server, tray host and bus are session-wide because GTK binds to the display and the
bus the first time it is imported in a process. Every test builds its own app on them, in
this process (Tk in the main thread, as in the real app), and pumps Tk while it waits.
"""

from __future__ import annotations

import gc
import os
import tkinter as tk
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.config import Config, save_config
from app.ui.controller import DesktopApp
from app.ui.desktop import Options, create_app, create_tk
from tests.gui.xserver import (
    require_tools,
    start_dbus,
    start_trayer,
    start_xvfb,
    stop,
    tray_icons,
    x,
)
from tests.helpers import wait_until

#: pystray's GTK backends call APIs PyGObject deprecates (GObject.idle_add, Gtk.StatusIcon);
#: the suite turns warnings into errors, which would break those backends in their threads.
GTK_DEPRECATIONS = [
    pytest.mark.filterwarnings(f"ignore::DeprecationWarning:{module}")
    for module in ("pystray._util.gtk", "pystray._gtk", "pystray._appindicator")
]

#: Where screenshots go: docs/screenshots when FILESYNC_SCREENSHOTS=1, else a temp dir.
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass(frozen=True)
class Desktop:
    """The X display, its tray host and the D-Bus session the tests run under."""

    display: str
    bus: str

    def x(self, *command: str, check: bool = True) -> str:
        """Run an X client on this display."""
        return x(self.display, *command, check=check)


@pytest.fixture(scope="session")
def desktop() -> Iterator[Desktop]:
    """Xvfb on a free display, trayer docked on it and a private D-Bus session."""
    require_tools()
    xvfb, display = start_xvfb()
    bus = trayer = None
    saved = {k: os.environ.get(k) for k in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "NO_AT_BRIDGE")}
    try:
        bus, address = start_dbus()
        trayer = start_trayer(display)
        os.environ.update(DISPLAY=display, DBUS_SESSION_BUS_ADDRESS=address, NO_AT_BRIDGE="1")
        yield Desktop(display, address)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for process in (trayer, bus, xvfb):
            if process is not None:
                stop(process)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """The folder screenshots are written to."""
    if os.environ.get("FILESYNC_SCREENSHOTS"):
        return DOCS_SCREENSHOTS
    return tmp_path / "screenshots"


@dataclass
class Harness:
    """A running desktop app in this process, plus what it tried to open."""

    app: DesktopApp
    root: tk.Tk
    opened: list[str] = field(default_factory=list)
    closed: bool = False
    #: Icons docked before this app started. A GTK icon of an earlier app in this process
    #: stays docked and shown after that app stopped, but nothing answers its clicks.
    stale_icons: frozenset[str] = frozenset()

    def pump(self) -> None:
        """Let Tk run its pending events and ``after()`` callbacks once."""
        self.root.update()

    def wait(
        self,
        condition: Callable[[], object],
        message: str | Callable[[], str] = "condition",
        timeout: float = 30,
    ) -> None:
        """Pump Tk until ``condition`` is true."""

        def check() -> object:
            self.pump()
            return condition()

        wait_until(check, timeout=timeout, message=message)

    def close(self) -> None:
        """Quit as the Quit item does: stop tray and engine, destroy the windows."""
        if not self.closed:
            self.closed = True
            self.app.shutdown()
            self.root.destroy()

    def collect(self) -> None:
        """Free the Tk objects now, in this (the Tk) thread.

        Widgets form reference cycles; left to the garbage collector they may be freed in
        whatever thread it next runs in (a tray or engine thread of a later test), and Tcl
        aborts the process when its interpreter is deleted from another thread.
        """
        del self.app, self.root
        gc.collect()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh FILESYNC_HOME and XDG_CONFIG_HOME (for the autostart file)."""
    monkeypatch.setenv("FILESYNC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "home"


@pytest.fixture
def start_app(desktop: Desktop, home: Path) -> Iterator[Callable[..., Harness]]:
    """Build and start the app with a backend and optional saved settings."""
    harnesses: list[Harness] = []

    def start(backend: str = "xorg", config: Config | None = None) -> Harness:
        if config is not None:
            save_config(config, home / "config" / "filesync.toml")
        stale = frozenset(tray_icons(desktop.display))
        root = create_tk()
        opened: list[str] = []
        app = create_app(root, Options(tray_backend=backend), opener=opened.append)
        harness = Harness(app, root, opened, stale_icons=stale)
        harnesses.append(harness)
        app.start()
        harness.pump()
        return harness

    yield start
    for harness in harnesses:
        harness.close()
        harness.collect()
    harnesses.clear()
    gc.collect()
