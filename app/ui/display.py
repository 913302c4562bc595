"""Is there a desktop to show a tray icon on? One line of explanation when there is not.

Checked before anything graphical is imported: ``import pystray`` itself raises (an Xlib
error, not ImportError) without a display, and Tk fails with a long TclError.
"""

from __future__ import annotations

import os
import sys

from app.errors import NoDisplay

HINT = "use `filesync run` to sync from a terminal"


def no_display_message(reason: str) -> str:
    """The one line printed when the desktop app cannot start for lack of a display."""
    return f"filesync: no desktop display ({reason}); {HINT}"


def check_display() -> None:
    """Raise :class:`NoDisplay` when this X11-based app cannot reach a display.

    Windows and macOS always have one for a logged-in user. Elsewhere Tk and the tray need X
    (XWayland on a Wayland desktop), so ``DISPLAY`` must be set; whether it answers is known
    only when Tk connects (see :func:`tk_failure`).
    """
    if sys.platform in ("win32", "darwin"):
        return
    if not os.environ.get("DISPLAY"):
        reason = "WAYLAND_DISPLAY is set but DISPLAY is not: XWayland is needed"
        if not os.environ.get("WAYLAND_DISPLAY"):
            reason = "DISPLAY is not set"
        raise NoDisplay(no_display_message(reason))


def tk_failure(exc: Exception) -> NoDisplay:
    """Turn Tk's "couldn't connect to display" error into the one-line message."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return NoDisplay(no_display_message(first))
