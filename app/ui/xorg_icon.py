"""Fixes to pystray's plain X (XEmbed) tray icon, as a subclass made at run time.

Facts found with trayer under Xvfb, each fixed here:

* The icon window never selects ``ButtonPress``, so clicks never arrive: it does now, and a
  left click runs the default menu item (the status window).
* Every picture change sends a new dock request, and a dock request can be lost (a tray
  that is still starting, a panel restarted at login): roughly one start in six left the
  icon undocked. Here the loop thread re-requests docking only while the window is not
  embedded, at most every :data:`DOCK_RETRY` seconds, checked once a second.
* pystray marks the icon ready before recording its loop thread, so the setup thread's
  first call can fail; the thread is recorded first.
* The title becomes WM_NAME, which python-xlib encodes as Latin-1 and raises on anything
  else; other characters are replaced.
* ``__del__`` closes the display at garbage collection and raises if the server is gone;
  :meth:`release` closes it when the loop has ended and ``__del__`` stays quiet.
"""

from __future__ import annotations

import contextlib
import importlib
import select
import threading
import time
from collections.abc import Iterator
from typing import Any

#: Seconds between dock requests while the icon is not embedded.
DOCK_RETRY = 2.0
#: How often the loop thread wakes up to check that it is docked.
DOCK_CHECK = 1.0


def latin1(text: str) -> str:
    """``text`` with dashes made ASCII and other non-Latin-1 characters replaced by ``?``."""
    text = text.replace("\u2014", "-").replace("\u2013", "-").replace("\u2026", "...")
    return text.encode("latin-1", "replace").decode("latin-1")


def fixed_xorg_icon(base: Any) -> Any:
    """Subclass pystray's ``_xorg.Icon`` (``base``) with the fixes in the module doc."""
    xlib_x: Any = importlib.import_module("Xlib.X")

    class FixedXorgIcon(base):  # type: ignore[misc]
        """pystray's X icon that hears clicks and keeps itself docked."""

        title = property(lambda self: latin1(base.title.fget(self)), base.title.fset)

        def _create_window(self) -> Any:
            self._dock_requested = 0.0
            window = super()._create_window()
            window.change_attributes(
                event_mask=xlib_x.ExposureMask | xlib_x.StructureNotifyMask | xlib_x.ButtonPressMask
            )
            return window

        def _run(self) -> None:
            self._thread = threading.current_thread()
            super()._run()

        def _embedded(self) -> bool:
            parent = self._window.query_tree().parent
            return bool(parent.id != self._display.screen().root.id)

        def _assert_docked(self) -> None:
            if not self._embedded() and time.monotonic() - self._dock_requested > DOCK_RETRY:
                self._dock_requested = time.monotonic()
                self._dock_window()
            assert self._systray_manager

        def _events(self) -> Iterator[Any]:
            while True:
                if not self._display.pending_events():
                    ready, _, _ = select.select([self._display], [], [], DOCK_CHECK)
                    if not ready:
                        if self.visible:
                            with contextlib.suppress(AssertionError):
                                self._assert_docked()
                        continue
                event = self._display.next_event()
                if not event:
                    return
                yield event

        def release(self) -> None:
            """Close the X connection once the loop has ended."""
            with contextlib.suppress(Exception):
                self._display.close()

        def __del__(self) -> None:
            with contextlib.suppress(Exception):
                super().__del__()

    return FixedXorgIcon
