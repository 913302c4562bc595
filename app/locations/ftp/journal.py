"""The hub journal over FTP: the shared :mod:`app.locations.remote.hubjournal` (SFTP uses it
too), called the FTP way, with the held connection passed to each call.

``APPE`` appends, ``RETR`` with ``REST`` reads from an offset; a ``5xx`` refusal is an answer
(no folder, file gone, no permission), anything else is the connection's trouble and propagates.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
from collections.abc import Callable

from app.locations.base import FileMeta, Listing
from app.locations.ftp.listing import RemoteEntry
from app.locations.remote import hubjournal
from app.locations.remote.hubjournal import (
    JOURNAL_DIR,
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


class HubJournal:
    """The shared hub journal of one FTP location; each call gets the held connection."""

    def __init__(self, name: str, abs_path: Callable[[str], str]) -> None:
        self._shared = hubjournal.HubJournal(name)
        self._abs = abs_path

    @property
    def writer(self) -> str:
        """This run's id, the start of its journal file's name."""
        return self._shared.writer

    @property
    def writable(self) -> bool:
        """False once the server refused an append (tags then come from listings alone)."""
        return self._shared.writable

    @property
    def pending(self) -> bool:
        """True while journal lines wait to be sent."""
        return self._shared.pending

    def tag(self, path: str, size: int, mtime_ns: int, listed: int = 0) -> int:
        """See :meth:`app.locations.remote.hubjournal.HubJournal.tag`."""
        return self._shared.tag(path, size, mtime_ns, listed)

    def record(self, path: str, meta: FileMeta) -> FileMeta:
        """Note our upload of ``path``; return ``meta`` with the tag a scan will report."""
        return self._shared.record(path, meta)

    def forget(self, path: str) -> None:
        """We deleted or renamed ``path`` away: withdraw our entry for it."""
        self._shared.forget(path)

    def due(self, now: float) -> bool:
        """Whether a batch should send its pending lines now rather than at its end."""
        return self._shared.due(now)

    def refresh(self, ftp: ftplib.FTP, list_dir: ListDir) -> None:
        """Read what other writers appended since the last refresh."""
        self._shared.refresh(FtpJournalStore(ftp, list_dir, self._abs))

    def flush(self, ftp: ftplib.FTP) -> None:
        """Append the pending entries to our journal file."""
        self._shared.flush(FtpJournalStore(ftp, None, self._abs))

    def prune(self, ftp: ftplib.FTP, list_dir: ListDir, listing: Listing, now_ns: int) -> None:
        """Remove other runs' idle journals that describe no listed file any more."""
        self._shared.prune(FtpJournalStore(ftp, list_dir, self._abs), listing, now_ns)
