"""Data-connection transfers: streaming a download out and an upload in, chunk by chunk.

Kept apart from the location so the two ways a transfer fails stay apart too: our socket
breaking (the server's problem: :class:`LocationUnavailable`, the connection is dropped) and
the *other side* failing (the local disk, or another location feeding an upload), which must
surface unchanged and must never be mistaken for a broken FTP connection.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import logging
import socket
import ssl
from collections.abc import Callable
from typing import BinaryIO

from app.locations.ftp.client import CONNECTION_ERRORS

log = logging.getLogger(__name__)


class SourceFailed(Exception):
    """Reading the upload's source failed; ``cause`` is that error, re-raised by the caller."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def upload(ftp: ftplib.FTP, abs_path: str, source: BinaryIO, buffer: bytearray) -> int:
    """STOR ``source`` to ``abs_path`` through ``buffer`` and return the number of bytes sent.

    ``buffer`` is reused from upload to upload (no allocation per chunk). If the source fails,
    the data connection is closed (the server keeps a truncated file, which is why callers
    upload to a temporary name) and :class:`SourceFailed` is raised.
    """
    size = 0
    view = memoryview(buffer)
    readinto = getattr(source, "readinto", None)
    with ftp.transfercmd(f"STOR {abs_path}") as conn:
        while True:
            try:
                if readinto is not None:
                    count = readinto(view)
                    chunk: bytes | memoryview = view[:count]
                else:
                    chunk = source.read(len(buffer))
                    count = len(chunk)
            except BaseException as exc:
                conn.close()
                with contextlib.suppress(*CONNECTION_ERRORS, ftplib.Error):
                    ftp.voidresp()
                raise SourceFailed(exc) from exc
            if not count:
                break
            conn.sendall(chunk)
            size += count
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()
    ftp.voidresp()
    return size


class DownloadStream(io.RawIOBase):
    """The raw bytes of a RETR data connection, with socket errors translated.

    ``translate`` turns an OS or TLS error into the location's error (and drops the control
    connection), so a consumer sees :class:`LocationUnavailable`, not an ``OSError`` it could
    confuse with its own disk failing. ``confirm`` reads the server's final reply when the data
    ends: end-of-file is reported only after the server said the transfer completed, so a
    download the server cut short raises instead of looking like a shorter file.
    """

    def __init__(
        self,
        conn: socket.socket,
        translate: Callable[[BaseException], Exception],
        confirm: Callable[[], None],
    ) -> None:
        super().__init__()
        self._conn = conn
        self._translate = translate
        self._confirm = confirm
        self._eof = False
        self.confirmed = False

    def readable(self) -> bool:
        """A download stream is read-only."""
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the socket; 0 only once the server confirmed the end."""
        if self._eof:
            return 0
        try:
            count = self._conn.recv_into(buffer)
        except OSError as exc:
            raise self._translate(exc) from None
        if count == 0:
            self._eof = True
            self._close_data(polite=True)
            self._confirm()
            self.confirmed = True
        return count

    def _close_data(self, polite: bool) -> None:
        if polite and isinstance(self._conn, ssl.SSLSocket):
            with contextlib.suppress(OSError, ValueError):
                self._conn.unwrap()
        self._conn.close()

    def finish(self) -> bool:
        """Close the data connection; return True if the transfer completed and was confirmed.

        False means the control connection is in an unknown state and must be dropped.
        """
        if not self._eof:
            self._close_data(polite=False)
        self.close()
        return self.confirmed
