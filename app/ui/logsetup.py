"""Where the desktop app logs: a rotated file in the user log dir (plus stderr).

A desktop app is usually started without a terminal, so the file is where problems are read
("Open log" in the menu opens it). The handlers come from :mod:`app.logsetup`, which also
masks every password FileSync has parsed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app import logsetup, paths

LOG_NAME = "filesync.log"


def default_log_file() -> Path:
    """The desktop app's log file in the user log dir."""
    return paths.log_dir() / LOG_NAME


def setup_logging(verbosity: int, log_file: Path) -> None:
    """Log to ``log_file`` (rotated) and stderr; ``verbosity`` 1+ adds DEBUG."""
    logsetup.setup_logging(verbosity, log_file, rotate=True)
    if verbosity < 2:
        logging.getLogger("PIL").setLevel(logging.INFO)
