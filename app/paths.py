"""Where FileSync keeps its files. The only module that asks platformdirs.

Config (user settings), state (the SQLite index, the single-instance lock) and logs live in the
platform's usual directories, so a user finds them where their OS puts such things.
``FILESYNC_HOME`` overrides all three with one folder (used by tests and portable installs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "filesync"


def _override(sub: str) -> Path | None:
    home = os.environ.get("FILESYNC_HOME")
    return Path(home, sub) if home else None


def config_dir() -> Path:
    """Folder of the user's settings file."""
    if home := _override("config"):
        return home
    import platformdirs  # with tempfile and shutil: not loaded by a run given --state

    return platformdirs.user_config_path(APP_NAME, appauthor=False)


def state_dir() -> Path:
    """Folder of the state index and the lock."""
    if home := _override("state"):
        return home
    import platformdirs

    return platformdirs.user_state_path(APP_NAME, appauthor=False)


def log_dir() -> Path:
    """Folder of the rotated log files."""
    if home := _override("log"):
        return home
    import platformdirs

    return platformdirs.user_log_path(APP_NAME, appauthor=False)


def resources_dir() -> Path:
    """Folder of the icons: inside a PyInstaller bundle, ``resources/`` beside the package (a
    checkout or editable install), or ``<prefix>/share/filesync/resources`` (a wheel)."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle, "resources")
    beside = Path(__file__).resolve().parent.parent / "resources"
    if beside.is_dir():
        return beside
    return Path(sys.prefix, "share", APP_NAME, "resources")
