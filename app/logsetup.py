"""Logging for every front end: coloured on a terminal, plain in files, never a password.

Passwords are never put into log messages on purpose; as a second line of defence every
password FileSync parses is registered here and masked in any record that would contain it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

_SECRETS: set[str] = set()
_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
_DATEFMT = "%H:%M:%S"


#: Shorter secrets are not masked: masking every "ab" in every line would make logs unreadable.
MIN_SECRET_LENGTH = 4


def register_secret(secret: str) -> None:
    """Mask ``secret`` in every log record from now on."""
    if len(secret) >= MIN_SECRET_LENGTH:
        _SECRETS.add(secret)


class RedactSecrets(logging.Filter):
    """Replaces registered secrets with ``***`` in a record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            message = record.getMessage()
            masked = message
            for secret in _SECRETS:
                masked = masked.replace(secret, "***")
            if masked != message:
                record.msg, record.args = masked, None
        return True


def setup_logging(verbose: int = 0, log_file: Path | None = None, rotate: bool = False) -> None:
    """Configure the root logger once: a console handler and an optional file handler."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    level = logging.DEBUG if verbose > 0 else logging.INFO
    root.setLevel(level)
    console: logging.Handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        import colorlog  # only for a terminal

        console.setFormatter(colorlog.ColoredFormatter("%(log_color)s" + _FORMAT, datefmt=_DATEFMT))
    else:
        console.setFormatter(logging.Formatter(_FORMAT, datefmt=_DATEFMT))
    console.addFilter(RedactSecrets())
    root.addHandler(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler: logging.Handler
        if rotate:
            from logging.handlers import RotatingFileHandler  # socket, pickle: rotating only

            file_handler = RotatingFileHandler(
                log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
            )
        else:
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
        file_handler.addFilter(RedactSecrets())
        root.addHandler(file_handler)
    if verbose < 2:
        logging.getLogger("watchdog").setLevel(logging.WARNING)
