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

The root is the URL's path; ``~`` as its first segment is the login's home. The location
holds a writer (:mod:`.writer`: uploads, deletes and renames); both work over one
:class:`~app.locations.sftp.remote.SftpRemote` (session, root, names, the files' versions).
The connection, host-key check, authentication, reconnects and backoff live in
:mod:`.connection`; the pipelined requests in :mod:`.protocol`.
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO

import paramiko

from app.errors import FileSyncError, LocationUnavailable
from app.locations.base import (
    CHUNK_SIZE,
    META_DIR,
    TEMP_PREFIX,
    Capabilities,
    FileMeta,
    Listing,
    WriteJob,
    WriteOutcome,
    is_internal,
)
from app.locations.remote.named import SpecNamed
from app.locations.sftp import protocol
from app.locations.sftp.connection import CountingSftp
from app.locations.sftp.fetch import SftpReadAhead
from app.locations.sftp.protocol import SFTP_ERRORS, StatusError, is_not_found
from app.locations.sftp.remote import NS, SFTP_NAMES, SftpRemote
from app.locations.sftp.transfer import Download
from app.locations.sftp.writer import SftpWriter

if TYPE_CHECKING:
    from app.locations.options import LocationOptions
    from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)

#: An upload's temp file this old was left by a crash and is removed by the next scan.
STALE_TEMP_NS = 3600 * NS


class SftpLocation(SftpReadAhead, SpecNamed):
    """A folder on an SSH server (``sftp://user@host/path``)."""

    kind = "sftp"
    reads_only = True

    def __init__(
        self, spec: LocationSpec, *, timeout: float = 15.0, read_only: bool = False
    ) -> None:
        self.spec = spec
        self._remote = SftpRemote(spec, timeout, read_only=read_only)
        self._conn = self._remote.conn
        self._writer = SftpWriter(self._remote)
        #: True once the root is known to hold ``.filesync/``: full scans then insist on it.
        self._marked = False
        self._last_listing: Listing | None = None
        self._links: frozenset[str] = frozenset()
        self._ahead = threading.local()

    @property
    def capabilities(self) -> Capabilities:
        """What this server offers; ``can_set_mtime`` drops if it ignores the times we set."""
        return self._remote.capabilities

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self._remote.capabilities = value

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
            self._remote.root = path
            attrs = protocol.lstat_many(sftp, [path])[0]
            if attrs is None or attrs.st_mode is None or not stat.S_ISDIR(attrs.st_mode):
                raise LocationUnavailable(
                    f"folder {path} does not exist on {self._conn.address} or is not a "
                    "folder; create it first",
                    location=self.name,
                )

        self._remote.call("login", setup)

    def close(self) -> None:
        """Close the connection. Safe to call twice."""
        self._conn.close()

    def adopt(self, has_history: bool) -> None:
        """Mark the root with ``.filesync/`` on first use; refuse a known root without it.

        A server folder that was replaced or emptied (a remount, a restore) must not look like
        "the user deleted everything". Later full scans check the mark too, at no extra cost.
        """

        def mark(sftp: paramiko.SFTPClient) -> None:
            attrs = protocol.lstat_many(sftp, [self._remote.abs(META_DIR)])[0]
            if attrs is not None and attrs.st_mode is not None and stat.S_ISDIR(attrs.st_mode):
                self._marked = True
                return
            if has_history:
                raise LocationUnavailable(
                    f"the {META_DIR} folder is gone from {self._remote.root} on the server (folder "
                    f"replaced or emptied?); its files are not deleted elsewhere. If this is the "
                    f"right folder, create an empty {META_DIR} folder in it to resume",
                    location=self.name,
                )
            if self._remote.read_only:
                return
            try:
                protocol.mkdir(sftp, self._remote.abs(META_DIR))
                self._marked = True
            except StatusError as exc:
                log.warning("%s: cannot create %s (%s); a replaced root folder will not be "
                            "noticed", self.name, META_DIR, exc)  # fmt: skip

        self._remote.call("checking the root folder", mark)

    # --- reading --------------------------------------------------------------------------

    def _refresh_journal(self) -> None:
        """Read other FileSyncs' new journal lines; send ours if an append is still pending."""

        def refresh(sftp: paramiko.SFTPClient) -> None:
            store = self._remote.journal_store(sftp)
            self._remote.journal.flush(store)
            self._remote.journal.refresh(store)

        self._remote.call("reading the journal", refresh)

    def scan(self, prefix: str = "") -> Listing:
        """Walk the tree below ``prefix``, one folder listing per folder."""
        start = self._remote.check(prefix.strip("/")) if prefix.strip("/") else ""
        self._refresh_journal()
        listing: Listing = {}
        links: set[str] = set()
        now_ns = time.time_ns()
        pending = [start]
        while pending:
            folder = pending.pop()
            where = self._remote.abs(folder)
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
            except SFTP_ERRORS as exc:
                raise self._conn.unavailable(f"listing {where}", exc) from None
            if not folder and self._marked and not any(e.filename == META_DIR for e in entries):
                raise LocationUnavailable(
                    f"the {META_DIR} folder vanished from {self._remote.root}: the folder was "
                    "replaced or emptied on the server; holding its deletes",
                    location=self.name,
                )
            for attrs in entries:
                rel = self._remote.child(folder, attrs.filename)
                if rel is None:
                    continue
                mode = attrs.st_mode or 0
                if is_internal(rel):
                    self._remove_stale_temp(rel, attrs, now_ns)
                elif stat.S_ISLNK(mode):
                    links.add(rel)
                elif stat.S_ISDIR(mode):
                    pending.append(rel)
                    self._remote.known_dirs.add(rel)
                elif stat.S_ISREG(mode):
                    listing[rel] = self._remote.meta(rel, attrs)
        if not start:
            self._last_listing = listing
        self._replace_links(start, links)
        return listing

    def _remove_stale_temp(self, rel: str, attrs: paramiko.SFTPAttributes, now_ns: int) -> None:
        """Delete an upload's temp file left by a crash (older than an hour)."""
        if self._remote.read_only:
            return
        if not posixpath.basename(rel).startswith(TEMP_PREFIX) or attrs.st_mtime is None:
            return
        if now_ns - attrs.st_mtime * NS < STALE_TEMP_NS:
            return
        with contextlib.suppress(FileSyncError):
            self._remote.call(
                f"removing {rel}", lambda s: protocol.remove(s, self._remote.abs(rel))
            )
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
        wanted = [self._remote.check(p) for p in paths]
        if not wanted:
            return {}
        self._refresh_journal()
        return self._remote.call("stat", lambda sftp: self._remote.stat_paths(sftp, wanted))

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        """Stream ``path`` from the server; the session is held until the block exits.

        Do not call this location's other methods from inside the block (the connection
        raises rather than deadlock).
        """
        self._remote.check(path)
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
        start = functools.partial(Download, path=self._remote.abs(path), translate=translate)
        return self._conn.start_download(path, sftp, start)

    # --- writing: the writer ----------------------------------------------------------------

    def write(self, path: str, source: BinaryIO, mtime_ns: int) -> FileMeta:
        """Upload to a temporary name beside ``path``, stamp it, rename it into place."""
        return self._writer.write(path, source, mtime_ns)

    def guarded_write(
        self, path: str, source: BinaryIO, mtime_ns: int, expected: FileMeta | None
    ) -> FileMeta:
        """Like :meth:`write`, checking ``expected`` after the upload, just before the rename."""
        return self._writer.guarded_write(path, source, mtime_ns, expected)

    def write_many(
        self, jobs: Sequence[WriteJob], *, parallel_reads: bool = False
    ) -> list[WriteOutcome]:
        """Guarded writes of a group, the small files together (see :class:`SftpWriter`)."""
        return self._writer.write_many(jobs, parallel_reads=parallel_reads)

    def delete(self, path: str) -> None:
        """Delete ``path`` and the folders it leaves empty; a missing file is fine."""
        self._writer.delete(path)

    def rename(self, src: str, dst: str) -> FileMeta:
        """Rename on the server (no copy); missing folders of ``dst`` are created."""
        return self._writer.rename(src, dst)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the journal lines of one engine batch into one append."""
        with self._writer.batch():
            yield

    def housekeeping(self) -> None:
        """Remove journals of FileSync runs that ended long ago (see ``remote.hubjournal``)."""
        self._writer.prune_journal(self._last_listing)


def _list(sftp: paramiko.SFTPClient, path: str) -> list[paramiko.SFTPAttributes]:
    return protocol.list_dir(sftp, path)


__all__ = ["SFTP_NAMES", "SftpLocation"]
