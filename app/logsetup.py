"""Logging for every front end: coloured on a terminal, plain in files, never a password.

Passwords are never put into log messages on purpose; as a second line of defence every
password FileSync parses is registered here and masked in any record that would contain it.

An initial sync logs one line per copied file, 20,000 for 10,000 files into two folders, on
the engine's own thread: each line cost about 10 µs (the caller's frame looked up, the time
formatted, one ``write`` and flush). So no caller is looked up (no format here shows it), the
time text is made once a second, and the engine holds the lines of a group of copies
(:func:`held_lines`) and writes them together: the same lines, in the same order, a few
milliseconds later.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO, cast

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


class _CachedTime(logging.Formatter):
    """Formats the time of a record once a second (``strftime`` for every line cost ~1.5 µs)."""

    _second: tuple[int, str | None, str] = (-1, None, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        if self._second[:2] != (second, datefmt):
            ct = self.converter(record.created)
            text = time.strftime(datefmt or self.default_time_format, ct)
            self._second = (second, datefmt, text)
        text = self._second[2]
        if datefmt is None and self.default_msec_format:
            return self.default_msec_format % (text, record.msecs)
        return text


def _colored_formatter() -> logging.Formatter:
    """The terminal's coloured format, with the time made once a second."""
    import colorlog  # only for a terminal

    class ColoredCachedTime(_CachedTime, colorlog.ColoredFormatter):
        pass

    return ColoredCachedTime("%(log_color)s" + _FORMAT, datefmt=_DATEFMT)


_held = threading.local()


class _HoldingStream:
    """A handler's stream whose writes a thread may hold (:func:`held_lines`)."""

    def __init__(self, stream: TextIO, handler: logging.Handler) -> None:
        self.stream = stream
        self._handler = handler

    def write(self, text: str) -> int:
        held: dict[logging.Handler, list[str]] | None = getattr(_held, "lines", None)
        if held is None:
            return self.stream.write(text)
        held.setdefault(self._handler, []).append(text)
        return len(text)

    def flush(self) -> None:
        if getattr(_held, "lines", None) is None:
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class _HeldStreamHandler(logging.StreamHandler[TextIO]):
    """The console: a stream handler whose lines :func:`held_lines` can hold."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(cast(TextIO, _HoldingStream(stream, self)))


class _HeldFileHandler(logging.FileHandler):
    """A log file whose lines :func:`held_lines` can hold."""

    def _open(self) -> Any:
        return _HoldingStream(super()._open(), self)


def _rotating_handler(log_file: Path) -> logging.Handler:
    """The desktop app's rotated log file, likewise (each file it opens)."""
    from logging.handlers import RotatingFileHandler  # socket, pickle: rotating only

    class HeldRotatingFileHandler(RotatingFileHandler):
        def _open(self) -> Any:
            return _HoldingStream(super()._open(), self)

    return HeldRotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8")


@contextlib.contextmanager
def held_lines() -> Iterator[None]:
    """Within the block, this thread's log lines wait, and are then written in one go.

    For a burst of lines from one loop (a group of copies recorded): one ``write`` a handler
    instead of one a line. Other threads' lines are written at once meanwhile.
    """
    if getattr(_held, "lines", None) is not None:
        yield
        return
    _held.lines = {}
    try:
        yield
    finally:
        held: dict[logging.Handler, list[str]] = _held.lines
        _held.lines = None
        for handler, texts in held.items():
            _write_held(handler, "".join(texts))


def _write_held(handler: logging.Handler, text: str) -> None:
    """Write ``text`` to the stream ``handler`` has now (a rotation may have replaced it)."""
    handler.acquire()
    try:
        stream = getattr(handler, "stream", None)
        if isinstance(stream, _HoldingStream):
            stream = stream.stream
        if stream is not None:
            stream.write(text)
            stream.flush()
    except (OSError, ValueError):  # as logging itself: a log that cannot be written stops nothing
        pass
    finally:
        handler.release()


def setup_logging(verbose: int = 0, log_file: Path | None = None, rotate: bool = False) -> None:
    """Configure the root logger once: a console handler and an optional file handler."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    level = logging.DEBUG if verbose > 0 else logging.INFO
    root.setLevel(level)
    logging._srcfile = None  # no caller lookup per line: no format here shows it
    console: logging.Handler = _HeldStreamHandler(sys.stderr)
    if sys.stderr.isatty():
        console.setFormatter(_colored_formatter())
    else:
        console.setFormatter(_CachedTime(_FORMAT, datefmt=_DATEFMT))
    console.addFilter(RedactSecrets())
    root.addHandler(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler: logging.Handler
        if rotate:
            file_handler = _rotating_handler(log_file)
        else:
            file_handler = _HeldFileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(_CachedTime("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        file_handler.addFilter(RedactSecrets())
        root.addHandler(file_handler)
    if verbose < 2:
        logging.getLogger("watchdog").setLevel(logging.WARNING)
