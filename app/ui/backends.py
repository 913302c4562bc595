"""Loading pystray's tray backends one by one, with the fixes FileSync needs.

``import pystray`` picks a backend at import time and raises whatever that backend raises:
without a display the X backend raises an Xlib error, not :class:`ImportError`. So the
package is imported with the always-importable ``dummy`` backend and each real backend module
is then imported on its own, so a failure is reported per backend.

Linux facts this module encodes:

* ``xorg`` docks through XEmbed but has no menu; :mod:`app.ui.xorg_icon` fixes its clicks,
  docking and titles. A click runs the default menu item, which opens the status window.
* ``gtk`` and ``appindicator`` give a real menu but need PyGObject and a D-Bus session
  (they connect to the notification service when they start); without a session bus they
  are skipped rather than failing later in their thread.
* ``gtk`` sets the icon's title but no tooltip; the subclass sets the tooltip too. Both GTK
  backends hide their last notification when they stop, which raises when no notification
  service runs; the subclass ignores that, and notifications count as supported only when
  the session bus has ``org.freedesktop.Notifications``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.ui.xorg_icon import fixed_xorg_icon

log = logging.getLogger(__name__)

#: Backends tried in order when the user did not choose one (``PYSTRAY_BACKEND``).
DEFAULT_ORDER = {
    "win32": ("win32",),
    "darwin": ("darwin",),
}
LINUX_ORDER = ("appindicator", "gtk", "xorg")
ALL_BACKENDS = ("appindicator", "gtk", "xorg", "win32", "darwin")


class TrayBackendError(Exception):
    """A tray backend cannot be used here; the message says why."""


@dataclass(frozen=True)
class Backend:
    """A loaded backend: its name and the pystray ``Icon`` class to instantiate."""

    name: str
    icon_class: Any
    has_menu: bool
    has_notification: bool


def candidates(preferred: str | None = None) -> tuple[str, ...]:
    """The backends to try: the user's choice, ``PYSTRAY_BACKEND``, or the platform order."""
    chosen = preferred or os.environ.get("PYSTRAY_BACKEND")
    if chosen:
        return (chosen,)
    return DEFAULT_ORDER.get(sys.platform, LINUX_ORDER)


def import_pystray() -> Any:
    """Import the pystray package without letting it probe a backend."""
    saved = os.environ.get("PYSTRAY_BACKEND")
    os.environ["PYSTRAY_BACKEND"] = "dummy"
    try:
        import pystray
    finally:
        if saved is None:
            del os.environ["PYSTRAY_BACKEND"]
        else:
            os.environ["PYSTRAY_BACKEND"] = saved
    return pystray


def _require_session_bus_address() -> None:
    """Refuse the GTK backends before GTK loads when no session bus is configured.

    Without an address GLib (and GTK's accessibility bridge, at import) would autolaunch a
    private bus through X11 (``dbus-launch``): no tray watcher listens on it and the daemon
    outlives us.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    user_bus = bool(runtime) and Path(runtime or "", "bus").exists()
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS") and not user_bus:
        raise TrayBackendError("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)")


def _session_bus_reachable() -> bool:
    """Raise unless a session bus answers; return whether a notification service exists."""
    from gi.repository import Gio, GLib

    try:
        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
    except Exception as exc:  # GLib.Error; the message names the missing address
        raise TrayBackendError(f"no D-Bus session bus ({exc})") from exc
    names: set[str] = set()
    for method in ("ListNames", "ListActivatableNames"):
        try:
            reply = bus.call_sync(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                method,
                None,
                GLib.VariantType.new("(as)"),
                Gio.DBusCallFlags.NONE,
                2000,
                None,
            )
        except Exception:
            log.debug("D-Bus %s failed", method, exc_info=True)
            continue
        names.update(reply.unpack()[0])
    return "org.freedesktop.Notifications" in names


def load_backend(name: str) -> Backend:
    """Import one backend and return its (fixed) Icon class, or raise TrayBackendError."""
    if name not in ALL_BACKENDS:
        raise TrayBackendError(f"unknown tray backend {name!r}; use one of {ALL_BACKENDS}")
    if name in ("gtk", "appindicator"):
        _require_session_bus_address()
    import_pystray()

    try:
        module = importlib.import_module(f"pystray._{name}")
    except Exception as exc:  # Xlib and GLib raise their own types, not ImportError
        raise TrayBackendError(f"{type(exc).__name__}: {exc}".strip()) from exc
    icon_class: Any = module.Icon
    notifications = bool(getattr(icon_class, "HAS_NOTIFICATION", False))
    if name in ("gtk", "appindicator"):
        notifications = _session_bus_reachable()
        icon_class = _fixed_gtk_icon(icon_class, tooltip=name == "gtk")
    elif name == "xorg":
        icon_class = fixed_xorg_icon(icon_class)
    return Backend(
        name=name,
        icon_class=icon_class,
        has_menu=bool(getattr(icon_class, "HAS_MENU", True)),
        has_notification=notifications,
    )


def choose_backend(preferred: str | None = None) -> Backend:
    """The first backend of :func:`candidates` that loads; raise with every reason if none."""
    reasons = []
    for name in candidates(preferred):
        try:
            backend = load_backend(name)
        except TrayBackendError as exc:
            log.info("tray backend %s unavailable: %s", name, exc)
            reasons.append(f"{name}: {exc}")
            continue
        log.info("tray backend: %s (menu: %s)", name, backend.has_menu)
        return backend
    raise TrayBackendError("no tray backend works here (" + "; ".join(reasons) + ")")


def _fixed_gtk_icon(base: Any, *, tooltip: bool) -> Any:
    import gi

    gi.require_version("Gdk", "3.0")
    from gi.repository import Gdk, GLib

    if GLib.get_prgname() != "filesync":  # GLib warns when these are set twice
        GLib.set_prgname("filesync")
        GLib.set_application_name("FileSync")
        Gdk.set_program_class("FileSync")

    class FixedGtkIcon(base):  # type: ignore[misc]
        """pystray's GTK icon: shows its title as tooltip, stops quietly without notifier."""

        def _update_title(self) -> None:
            super()._update_title()
            if not tooltip:
                return

            def apply() -> bool:
                self._status_icon.set_tooltip_text(self.title)
                return False

            GLib.idle_add(apply)

        def _finalize(self) -> None:
            # Runs in the tray thread after the loop ended. The hide queued by Tray.stop() has
            # run, but without another loop iteration it never reaches the X server, and the
            # icon would stay docked as long as the process lives.
            try:
                if hasattr(self, "_status_icon"):
                    self._status_icon.set_visible(False)
                context = GLib.MainContext.default()
                while context.pending():
                    context.iteration(False)
                display = Gdk.Display.get_default()
                if display is not None:
                    display.flush()
                super()._finalize()
            except Exception:  # hiding a notification fails when no notification daemon runs
                log.debug("GTK tray finalize", exc_info=True)

    return FixedGtkIcon
