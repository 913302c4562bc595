"""The server folder an FTP location syncs: its connection, its root, what the server offers.

One :class:`Remote` is shared by the parts of :class:`~app.locations.ftp.location.FtpLocation`
(the scanner, the reader, the writer), so none of them borrows another's attributes. It
holds what every part needs: the connection and one way to run a command on it
(:meth:`Remote.call`), the absolute path of a relative one, the rules for names, the listing
commands the server offers (learnt at ``open()``), and the hub journal that tags listed files.
"""

from __future__ import annotations

import ftplib
import logging
import ssl
import time
from collections.abc import Callable
from typing import TypeVar

from app.errors import FileSyncError, LocationUnavailable, UnsafePath
from app.locations.base import FileMeta, check_relpath
from app.locations.ftp.client import FtpClient
from app.locations.ftp.journal import FtpJournalStore, HubJournal
from app.locations.ftp.listing import (
    ListingParseError,
    RemoteEntry,
    parse_list_line,
    parse_mdtm_reply,
    parse_mlsd_line,
)
from app.locations.names import FTP_NAMES
from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)

T = TypeVar("T")
NS = 1_000_000_000
Entries = list[tuple[RemoteEntry, str]]


class Remote:
    """The connection, the root and the server's listing commands, shared by a location's parts.

    ``use_mlsd`` and the others say what ``open()`` found in FEAT; until then the cautious
    defaults hold (LIST without MDTM, no time setting).
    """

    def __init__(self, spec: LocationSpec, timeout: float, *, read_only: bool = False) -> None:
        self.name = spec.redacted
        #: Look without touching (``run --dry-run``): create, mark and clean up nothing.
        self.read_only = read_only
        self.client = FtpClient(spec, timeout)
        self.root = spec.path
        self.use_mlsd = False
        self.use_mdtm = False
        self.use_mfmt = False
        self.mdtm_set = False
        self.list_cmd = "LIST"
        #: Folders (relative) known to exist, so a write sends MKD only for new ones.
        self.known_dirs: set[str] = {""}
        #: Exact versions of our uploads, and of other FileSyncs' (see ``ftp.journal``).
        self.journal = HubJournal(self.name)
        #: Unsafe names on the server already warned about (a poll every 2 s must not repeat it).
        self._warned_names: set[str] = set()

    def call(self, what: str, action: Callable[[ftplib.FTP], T], path: str | None = None) -> T:
        """Run ``action`` on the connection; turn any FTP refusal into one FileSync error."""
        try:
            return self.client.run(what, action)
        except FileSyncError:
            raise
        except (ftplib.Error, ListingParseError) as exc:
            raise LocationUnavailable(
                f"{what} failed: {self.client.scrub(str(exc))}", location=self.name, path=path
            ) from None

    # --- names ----------------------------------------------------------------------------

    def abs(self, rel: str) -> str:
        """The server's path of ``rel`` (``""``: the root)."""
        return f"{self.root.rstrip('/')}/{rel}" if rel else self.root

    @staticmethod
    def check(path: str) -> str:
        """``path`` if a server can hold it, else :class:`UnsafePath`."""
        check_relpath(path)
        why = FTP_NAMES.refusal(path)
        if why is not None:
            raise UnsafePath(f"cannot hold the name {path!r} on a server: {why}")
        return path

    def child(self, folder: str, name: str) -> str | None:
        """Return the relative path of ``name`` in ``folder``, or None if it is unsafe."""
        rel = f"{folder}/{name}" if folder else name
        try:
            if "/" in name or "\r" in name or "\n" in name:
                raise UnsafePath(f"unsafe file name {rel!r}")
            check_relpath(rel)
            rel.encode("utf-8")
        except (UnsafePath, UnicodeEncodeError):
            if rel not in self._warned_names:
                self._warned_names.add(rel)
                log.warning("%s: skipping unsafe name %r from the server", self.name, rel)
            return None
        return rel

    # --- the hub journal --------------------------------------------------------------------

    def meta(
        self, rel: str, size: int, mtime_ns: int, unique: int, journal: bool = True
    ) -> FileMeta:
        """A listed file's meta, tagged with the hub journal's matching versions *and* the
        listing's own ``unique`` fact (see :meth:`HubJournal.tag`), so a journal entry of ours
        never hides a save another program made in the same second.

        ``journal=False`` gives the listing's tag alone, which is what the journal records.
        """
        if not journal:
            return FileMeta(size, mtime_ns, unique)
        return FileMeta(size, mtime_ns, self.journal.tag(rel, size, mtime_ns, unique))

    def refresh_journal(self) -> None:
        """Read other FileSyncs' new journal lines; send ours if an append is still pending."""

        def refresh(ftp: ftplib.FTP) -> None:
            store = self.journal_store(ftp)
            self.journal.flush(store)
            self.journal.refresh(store)

        self.call("reading the journal", refresh)

    def journal_store(self, ftp: ftplib.FTP) -> FtpJournalStore:
        """The journal's file operations on the held connection ``ftp``."""
        return FtpJournalStore(ftp, self.list_dir, self.abs)

    # --- listing --------------------------------------------------------------------------

    def read_lines(self, ftp: ftplib.FTP, command: str) -> list[str]:
        """Run a listing command and return its lines (undecodable bytes kept as surrogates)."""
        lines: list[str] = []
        with ftp.transfercmd(command) as conn, conn.makefile("rb") as stream:
            lines.extend(raw.decode("utf-8", "surrogateescape").rstrip("\r\n") for raw in stream)
            if isinstance(conn, ssl.SSLSocket):
                conn.unwrap()
        ftp.voidresp()
        return lines

    def list_dir(self, ftp: ftplib.FTP, folder: str) -> Entries:
        """Return the safe entries of ``folder`` with their raw lines; a ``550`` propagates."""
        path = self.abs(folder)
        now = time.time()
        command = f"MLSD {path}" if self.use_mlsd else f"{self.list_cmd} {path}"
        entries: Entries = []
        for line in self.read_lines(ftp, command):
            try:
                entry = parse_mlsd_line(line) if self.use_mlsd else parse_list_line(line, now)
            except ListingParseError as exc:
                # Skipping the line would make its file look deleted: refuse the listing.
                raise LocationUnavailable(
                    f"cannot read the listing of {path}: {exc}", location=self.name
                ) from None
            if entry is not None and self.child(folder, entry.name) is not None:
                entries.append((entry, line))
        return entries

    def mdtm(self, ftp: ftplib.FTP, rel: str, fallback: int | None) -> int | None:
        """Exact time of ``rel``; ``fallback`` if the server will not say (never drop a file)."""
        try:
            return parse_mdtm_reply(ftp.sendcmd(f"MDTM {self.abs(rel)}"))
        except (ftplib.error_perm, ListingParseError) as exc:
            log.debug("%s: MDTM %s failed (%s); using the listing time", self.name, rel, exc)
            return fallback


def mlst_entry(reply: str) -> RemoteEntry | None:
    """The entry an ``MLST`` reply describes (None for a folder's own ``cdir`` line)."""
    for line in reply.splitlines()[1:-1]:
        return parse_mlsd_line(line[1:] if line.startswith(" ") else line)
    raise ListingParseError(f"MLST reply without facts: {reply!r}")
