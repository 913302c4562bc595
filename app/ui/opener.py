"""Open a folder, file or URL with the desktop's default application.

The opener (``xdg-open``, ``open``) is started in its own session and reaped by a daemon
thread, so it never stays behind as a zombie and never blocks the Tk thread.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

from app.errors import FileSyncError
from app.locations.registry import kind_of
from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)


def target_of(spec: LocationSpec) -> str:
    """What "Open" shows: a folder, the folder holding a ZIP, or the FTP URL (no password)."""
    return kind_of(spec).open_target(spec)


def open_with_desktop(target: str) -> None:
    """Ask the desktop to open ``target``; raise FileSyncError if no opener exists."""
    log.info("opening %s", target)
    if sys.platform == "win32":  # pragma: no cover - Windows only
        os.startfile(target)  # type: ignore[attr-defined,unused-ignore]
        return
    command = ["open" if sys.platform == "darwin" else "xdg-open", target]
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise FileSyncError(
            f"cannot open {target}: {command[0]} is missing ({exc.strerror})"
        ) from exc
    threading.Thread(target=process.wait, name="filesync-opener", daemon=True).start()
