"""The hub journal over FTP: the shared :mod:`app.locations.remote.hubjournal` (SFTP uses it
too) reaches the server through :class:`FtpJournalStore`, on the held connection.

``APPE`` appends, ``RETR`` with ``REST`` reads from an offset; a ``5xx`` refusal is an answer
(no folder, file gone, no permission), anything else is the connection's trouble and propagates.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
from collections.abc import Callable

from app.locations.ftp.listing import RemoteEntry
from app.locations.remote.hubjournal import (
    JOURNAL_DIR,
    HubJournal,
    JournalFile,
    JournalRefused,
    Version,
    format_entry,
    parse_journal,
)

__all__ = [
    "JOURNAL_DIR",
    "FtpJournalStore",
    "HubJournal",
    "Version",
    "format_entry",
    "parse_journal",
]

ListDir = Callable[[ftplib.FTP, str], list[tuple[RemoteEntry, str]]]


class FtpJournalStore:
    """A :class:`~app.locations.remote.hubjournal.JournalStore` on one held FTP connection."""

    def __init__(
        self, ftp: ftplib.FTP, list_dir: ListDir | None, abs_path: Callable[[str], str]
    ) -> None:
        self._ftp = ftp
        self._list_dir = list_dir
        self._abs = abs_path

    def list_journals(self) -> list[JournalFile]:
        """The journal folder's files; none before any FileSync wrote one."""
        if self._list_dir is None:
            return []
        try:
            entries = self._list_dir(self._ftp, JOURNAL_DIR)
        except ftplib.error_perm:
            return []
        return [JournalFile(e.name, e.size, e.mtime_ns) for e, _ in entries if e.is_file]

    def read_from(self, path: str, offset: int) -> bytes | None:
        """RETR ``path`` from byte ``offset`` (REST) to its end; None if it is gone."""
        chunks: list[bytes] = []
        try:
            self._ftp.retrbinary(f"RETR {self._abs(path)}", chunks.append, rest=offset or None)
        except ftplib.error_perm:
            return None
        return b"".join(chunks)

    def append(self, path: str, data: bytes) -> None:
        """APPE ``data``; a refusal (a read-only account) is :class:`JournalRefused`."""
        try:
            self._ftp.storbinary(f"APPE {self._abs(path)}", io.BytesIO(data))
        except ftplib.error_perm as exc:
            raise JournalRefused(str(exc)) from None

    def make_folder(self, path: str) -> None:
        """MKD ``path``; it may exist already."""
        with contextlib.suppress(ftplib.error_perm):
            self._ftp.mkd(self._abs(path))

    def remove(self, path: str) -> None:
        """DELE ``path``; a refusal is ignored."""
        with contextlib.suppress(ftplib.error_perm):
            self._ftp.delete(self._abs(path))
