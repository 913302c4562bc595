"""SFTP locations: a folder on any SSH server, kept in sync by polling.

How the contract of :mod:`app.locations.base` is met over SFTP (protocol version 3, what
OpenSSH and nearly every server speak):

* **Listing** reads each folder with OPENDIR/READDIR (attributes come with the names, not
  following links). Times are whole seconds (SFTP v3), so the precision is 1 s; size and time
  are all a v3 server tells, and the hub journal (:mod:`app.locations.remote.hubjournal`)
  tags files so another machine's same-size save within one second is still seen. A listing
  that fails raises :class:`LocationUnavailable`, never an empty answer.
* **Writes** go to a ``.filesync-tmp-*`` name in the target folder, get their time set on the
  open handle, and are renamed onto the real name with ``posix-rename@openssh.com`` (an atomic
  replace) where the server offers it, else delete + rename. A guarded write re-checks the
  file on the server after the upload, just before the rename.
* **stat** always asks the server (all paths of a call in one round trip).
* **Reads** of a group the engine copies from here are fetched together (:mod:`.fetch`):
  the small files in two round trips for all, each checked against the version planned.

The root is the URL's path; ``~`` as its first segment is the login's home. The connection,
host-key check, authentication, reconnects and backoff live in :mod:`.connection`; the
pipelined requests in :mod:`.protocol`; uploads, deletes and renames in :mod:`.writer`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import posixpath
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO, TypeVar

import paramiko

from app.errors import FileSyncError, LocationUnavailable, UnsafePath
from app.locations.base import (
    CHUNK_SIZE,
    META_DIR,
    TEMP_PREFIX,
    Capabilities,
    FileMeta,
    Listing,
    check_relpath,
    is_internal,
)
from app.locations.names import NamePolicy
from app.locations.remote.hubjournal import HubJournal
from app.locations.remote.named import SpecNamed
from app.locations.sftp import protocol
from app.locations.sftp.connection import CountingSftp, SftpConnection
from app.locations.sftp.fetch import SftpReadAhead
from app.locations.sftp.journal import SftpJournalStore
from app.locations.sftp.protocol import SFTP_ERRORS, Download, StatusError, is_not_found
from app.locations.sftp.writer import SftpWrites

if TYPE_CHECKING:
    from app.locations.options import LocationOptions
    from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)

T = TypeVar("T")
NS = 1_000_000_000
#: UTF-8 names (paramiko sends text). No line breaks: some servers re-encode them
#: (``rclone serve sftp`` lists ``\n`` back as ``␊``); no ``\\`` or ``C:``, which a Windows
#: server (OpenSSH for Windows) reads as path syntax. The same names an FTP server holds.
SFTP_NAMES = NamePolicy(utf8_only=True, windows_syntax=True, line_breaks=False)
CAPABILITIES = Capabilities(
    mtime_precision_ns=NS,
    can_set_mtime=True,
    can_rename=True,
    native_events=False,
    names=SFTP_NAMES,
    batched_writes=True,
    batched_reads=True,
)
#: A file whose listed second is this close to now (or later) may still change unseen.
RACY_S = 1
#: The tag of such a file: journal tags are CRC-32 values, never negative.
RACY_TAG = -1
#: An upload's temp file this old was left by a crash and is removed by the next scan.
STALE_TEMP_NS = 3600 * NS
UPLOAD_BUFFER = 256 * 1024
_ERRORS = SFTP_ERRORS


class SftpLocation(SftpReadAhead, SftpWrites, SpecNamed):
    """A folder on an SSH server (``sftp://user@host/path``)."""

    kind = "sftp"
    reads_only = True
    _journal_errors = _ERRORS

    def __init__(
        self, spec: LocationSpec, *, timeout: float = 15.0, read_only: bool = False
    ) -> None:
        self.spec = spec
        self._read_only = read_only
        self.capabilities = CAPABILITIES
        self._conn = SftpConnection(spec, timeout)
        self._root = spec.path
        #: Folders (relative) known to exist, so a write creates only new ones.
        self._known_dirs: set[str] = {""}
        self._buffer = bytearray(UPLOAD_BUFFER)
        #: True once the root is known to hold ``.filesync/``: full scans then insist on it.
        self._marked = False
        self._journal = HubJournal(self.name)
        self._batching = 0
        self._last_listing: Listing | None = None
        self._warned_names: set[str] = set()
        self._links: frozenset[str] = frozenset()
        self._posix_rename = True
        self._ahead = threading.local()

    @classmethod
    def from_spec(cls, spec: LocationSpec, options: LocationOptions) -> SftpLocation:
        """Build a location for ``spec`` (call :meth:`open` to connect)."""
        return cls(spec, timeout=options.connect_timeout, read_only=options.read_only)

    @property
    def request_count(self) -> int:
        """SFTP requests sent so far (for benchmarks and tests: requests per poll)."""
        return self._conn.requests

    # --- connection -----------------------------------------------------------------------

    def open(self) -> None:
        """Connect, log in, resolve ``~`` and check the root is a folder."""

        def setup(sftp: paramiko.SFTPClient) -> None:
            path = self.spec.path
            if path == "/~" or path.startswith("/~/"):
                path = self._conn.home.rstrip("/") + path[2:] or "/"
            self._root = path
            attrs = protocol.lstat_many(sftp, [path])[0]
            if attrs is None or attrs.st_mode is None or not stat.S_ISDIR(attrs.st_mode):
                raise LocationUnavailable(
                    f"folder {path} does not exist on {self._conn.address} or is not a "
                    "folder; create it first",
                    location=self.name,
                )

        self._call("login", setup)

    def close(self) -> None:
        """Close the connection. Safe to call twice."""
        self._conn.close()

    def adopt(self, has_history: bool) -> None:
        """Mark the root with ``.filesync/`` on first use; refuse a known root without it.

        A server folder that was replaced or emptied (a remount, a restore) must not look like
        "the user deleted everything". Later full scans check the mark too, at no extra cost.
        """

        def mark(sftp: paramiko.SFTPClient) -> None:
            attrs = protocol.lstat_many(sftp, [self._abs(META_DIR)])[0]
            if attrs is not None and attrs.st_mode is not None and stat.S_ISDIR(attrs.st_mode):
                self._marked = True
                return
            if has_history:
                raise LocationUnavailable(
                    f"the {META_DIR} folder is gone from {self._root} on the server (folder "
                    f"replaced or emptied?); its files are not deleted elsewhere. If this is the "
                    f"right folder, create an empty {META_DIR} folder in it to resume",
                    location=self.name,
                )
            if self._read_only:
                return
            try:
                protocol.mkdir(sftp, self._abs(META_DIR))
                self._marked = True
            except StatusError as exc:
                log.warning("%s: cannot create %s (%s); a replaced root folder will not be "
                            "noticed", self.name, META_DIR, exc)  # fmt: skip

        self._call("checking the root folder", mark)

    def _call(
        self, what: str, action: Callable[[paramiko.SFTPClient], T], path: str | None = None
    ) -> T:
        """Run ``action`` on the session; turn a refusal into one FileSync error."""
        try:
            return self._conn.run(what, action)
        except FileSyncError:
            raise
        except _ERRORS as exc:
            raise LocationUnavailable(
                f"{what} failed on {self._conn.address}: {exc}", location=self.name, path=path
            ) from None

    # --- names ----------------------------------------------------------------------------

    def _abs(self, rel: str) -> str:
        return f"{self._root.rstrip('/')}/{rel}" if rel else self._root

    def _check(self, path: str) -> str:
        check_relpath(path)
        why = SFTP_NAMES.refusal(path)
        if why is not None:
            raise UnsafePath(f"cannot hold the name {path!r} on an SFTP server: {why}")
        return path

    def _child(self, folder: str, name: str) -> str | None:
        """The relative path of ``name`` in ``folder``, or None (with one warning) if unsafe."""
        rel = f"{folder}/{name}" if folder else name
        if "/" not in name and SFTP_NAMES.refusal(rel) is None:
            try:
                return check_relpath(rel)
            except UnsafePath:
                pass
        if rel not in self._warned_names:
            self._warned_names.add(rel)
            log.warning("%s: skipping the name %r on the server (not one FileSync can sync "
                        "there)", self.name, rel)  # fmt: skip
        return None

    # --- reading --------------------------------------------------------------------------

    def _meta(self, rel: str, attrs: paramiko.SFTPAttributes, journal: bool = True) -> FileMeta:
        """A listed file's meta, tagged with the hub journal's matching versions.

        A file no journal line describes whose second is not over yet is *racy* (as git calls
        it): another program may replace it within that second, with the same size, and the
        listing would not change. Such a file gets :data:`RACY_TAG` until its second is
        safely past, so the first listing after that reports it as changed once and the
        engine looks at it again.
        """
        if attrs.st_mtime is None or attrs.st_size is None:
            raise LocationUnavailable(
                f"the server gives no size or time for {rel}", location=self.name, path=rel
            )
        mtime_ns = attrs.st_mtime * NS
        if not journal:
            return FileMeta(attrs.st_size, mtime_ns)
        tag = self._journal.tag(rel, attrs.st_size, mtime_ns)
        if not tag and attrs.st_mtime >= int(time.time()) - RACY_S:
            tag = RACY_TAG
        return FileMeta(attrs.st_size, mtime_ns, tag)

    def _journal_store(self, sftp: paramiko.SFTPClient) -> SftpJournalStore:
        return SftpJournalStore(sftp, self._abs)

    def _refresh_journal(self) -> None:
        """Read other FileSyncs' new journal lines; send ours if an append is still pending."""

        def refresh(sftp: paramiko.SFTPClient) -> None:
            store = self._journal_store(sftp)
            self._journal.flush(store)
            self._journal.refresh(store)

        self._call("reading the journal", refresh)

    def scan(self, prefix: str = "") -> Listing:
        """Walk the tree below ``prefix``, one folder listing per folder."""
        start = self._check(prefix.strip("/")) if prefix.strip("/") else ""
        self._refresh_journal()
        listing: Listing = {}
        links: set[str] = set()
        now_ns = time.time_ns()
        pending = [start]
        while pending:
            folder = pending.pop()
            where = self._abs(folder)
            try:
                entries = self._conn.run(f"listing {where}", functools.partial(_list, path=where))
            except StatusError as exc:
                if folder and is_not_found(exc):
                    if folder == start:
                        self._replace_links(start, links)
                        return {}
                    continue  # deleted since its parent was listed
                raise LocationUnavailable(
                    f"cannot list {where}: {exc}", location=self.name
                ) from None
            except FileSyncError:
                raise
            except _ERRORS as exc:
                raise self._conn.unavailable(f"listing {where}", exc) from None
            if not folder and self._marked and not any(e.filename == META_DIR for e in entries):
                raise LocationUnavailable(
                    f"the {META_DIR} folder vanished from {self._root}: the folder was replaced or "
                    "emptied on the server; holding its deletes",
                    location=self.name,
                )
            for attrs in entries:
                rel = self._child(folder, attrs.filename)
                if rel is None:
                    continue
                mode = attrs.st_mode or 0
                if is_internal(rel):
                    self._remove_stale_temp(rel, attrs, now_ns)
                elif stat.S_ISLNK(mode):
                    links.add(rel)
                elif stat.S_ISDIR(mode):
                    pending.append(rel)
                    self._known_dirs.add(rel)
                elif stat.S_ISREG(mode):
                    listing[rel] = self._meta(rel, attrs)
        if not start:
            self._last_listing = listing
        self._replace_links(start, links)
        return listing

    def _remove_stale_temp(self, rel: str, attrs: paramiko.SFTPAttributes, now_ns: int) -> None:
        """Delete an upload's temp file left by a crash (older than an hour)."""
        if self._read_only:
            return
        if not posixpath.basename(rel).startswith(TEMP_PREFIX) or attrs.st_mtime is None:
            return
        if now_ns - attrs.st_mtime * NS < STALE_TEMP_NS:
            return
        with contextlib.suppress(FileSyncError):
            self._call(f"removing {rel}", lambda sftp: protocol.remove(sftp, self._abs(rel)))
            log.info("%s: removed %s left by an interrupted upload", self.name, rel)

    def links(self) -> frozenset[str]:
        """Symbolic links the scans met on the server (see ``Location.links``)."""
        return self._links

    def _replace_links(self, prefix: str, found: set[str]) -> None:
        inside = prefix + "/"
        kept = {p for p in self._links if prefix and p != prefix and not p.startswith(inside)}
        self._links = frozenset(kept | found)

    def stat(self, path: str) -> FileMeta | None:
        """Ask the server now for ``path``'s size and time (None if it is not a file)."""
        return self.stat_many([path])[path]

    def stat_many(self, paths: Iterable[str]) -> dict[str, FileMeta | None]:
        """Ask the server now: one LSTAT per path, all in one round trip."""
        wanted = [self._check(p) for p in paths]
        if not wanted:
            return {}
        self._refresh_journal()
        return self._call("stat", lambda sftp: self._stat_paths(sftp, wanted))

    def _stat_paths(
        self, sftp: paramiko.SFTPClient, paths: list[str], journal: bool = True
    ) -> dict[str, FileMeta | None]:
        found = protocol.lstat_many(sftp, [self._abs(p) for p in paths])
        return {
            p: self._meta(p, a, journal) if a is not None and protocol.is_file(a) else None
            for p, a in zip(paths, found, strict=True)
        }

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        """Stream ``path`` from the server; the session is held until the block exits.

        Do not call this location's other methods from inside the block (the connection
        raises rather than deadlock).
        """
        self._check(path)
        early = self._read_early(path)
        if early is not None:
            yield early
            return
        with self._conn.session() as first:

            def translate(exc: BaseException) -> Exception:
                if self._conn.is_broken(exc):
                    self._conn.drop(exc)
                return self._conn.unavailable(f"download of {path}", exc)

            stream = self._start_download(first, path, translate)
            reader = io.BufferedReader(stream, CHUNK_SIZE)
            try:
                yield reader
            finally:
                reader.close()

    def _start_download(
        self,
        sftp: CountingSftp,
        path: str,
        translate: Callable[[BaseException], Exception],
    ) -> Download:
        start = functools.partial(Download, path=self._abs(path), translate=translate)
        return self._conn.start_download(path, sftp, start)


def _list(sftp: paramiko.SFTPClient, path: str) -> list[paramiko.SFTPAttributes]:
    return protocol.list_dir(sftp, path)


__all__ = ["SFTP_NAMES", "SftpLocation"]
