"""Reading an FTP tree: listings, scans, ``stat`` and streamed downloads.

The read half of :class:`app.locations.ftp.FtpLocation`, kept in its own module so each
stays small. Two rules run through it: a listing that fails or cannot be understood raises
:class:`LocationUnavailable` (an "empty" answer would delete files everywhere else), and a
name the server offers that could escape the root is skipped with a warning, never listed.

LIST mode keeps, per file, the LIST line and the MDTM time from the previous scan and asks
MDTM again only when the line changed (or the time is very recent): 10,000 MDTM round trips
cost seconds, an unchanged tree should cost one LIST per folder.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import logging
import posixpath
import socket
import ssl
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, TypeVar

from app.errors import FileSyncError, FileVanished, LocationUnavailable, UnsafePath
from app.locations.base import (
    CHUNK_SIZE,
    META_DIR,
    TEMP_PREFIX,
    FileMeta,
    Listing,
    check_relpath,
    is_internal,
)
from app.locations.ftp.client import FTP_ERRORS, FtpClient, is_not_found
from app.locations.ftp.journal import HubJournal
from app.locations.ftp.listing import (
    ListingParseError,
    RemoteEntry,
    parse_list_line,
    parse_mdtm_reply,
    parse_mlsd_line,
)
from app.locations.ftp.transfer import DownloadStream
from app.locations.names import FTP_NAMES

log = logging.getLogger(__name__)

T = TypeVar("T")
NS = 1_000_000_000
#: A file whose cached MDTM time is this recent is asked again even if its LIST line did not
#: change: LIST shows minutes, so a same-size edit in the same minute would otherwise be missed.
RECENT_NS = 120 * NS
#: An upload's temp file this old was left by a crash and is removed by the next scan.
STALE_TEMP_NS = 3600 * NS

Entries = list[tuple[RemoteEntry, str]]
Cache = dict[str, tuple[str, int]]


class FtpReadOps:
    """Listing, stat and download for an FTP location (mixed into ``FtpLocation``).

    Uses the state the location sets up in ``open()``: the client, the root and which
    listing commands the server offers.
    """

    _client: FtpClient
    _root: str
    _use_mlsd: bool
    _use_mdtm: bool
    _list_cmd: str
    _known_dirs: set[str]
    _mdtm_cache: Cache
    _marked: bool
    _read_only: bool
    _journal: HubJournal
    _last_listing: Listing | None
    #: Unsafe names on the server already warned about (a poll every 2 s must not repeat it).
    _warned_names: set[str]
    #: Symbolic links the last scans met (relative paths), for ``links()``.
    _links: frozenset[str]

    @property
    def name(self) -> str:
        """The location's redacted name (provided by the location class)."""
        raise NotImplementedError

    def _call(self, what: str, action: Callable[[ftplib.FTP], T], path: str | None = None) -> T:
        """Run ``action`` on the connection; turn any FTP refusal into one FileSync error."""
        try:
            return self._client.run(what, action)
        except FileSyncError:
            raise
        except (ftplib.Error, ListingParseError) as exc:
            raise LocationUnavailable(
                f"{what} failed: {self._client.scrub(str(exc))}", location=self.name, path=path
            ) from None

    # --- names ----------------------------------------------------------------------------

    def _abs(self, rel: str) -> str:
        return f"{self._root.rstrip('/')}/{rel}" if rel else self._root

    @staticmethod
    def _check(path: str) -> str:
        check_relpath(path)
        why = FTP_NAMES.refusal(path)
        if why is not None:
            raise UnsafePath(f"cannot hold the name {path!r} on a server: {why}")
        return path

    def _child(self, folder: str, name: str) -> str | None:
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

    def _meta(
        self, rel: str, size: int, mtime_ns: int, unique: int, journal: bool = True
    ) -> FileMeta:
        """A listed file's meta, tagged with the hub journal's matching versions *and* the
        listing's own ``unique`` fact (see :meth:`HubJournal.tag`), so a journal entry of ours
        never hides a save another program made in the same second.

        ``journal=False`` gives the listing's tag alone, which is what the journal records.
        """
        if not journal:
            return FileMeta(size, mtime_ns, unique)
        return FileMeta(size, mtime_ns, self._journal.tag(rel, size, mtime_ns, unique))

    def _refresh_journal(self) -> None:
        """Read other FileSyncs' new journal lines; send ours if an append is still pending."""

        def refresh(ftp: ftplib.FTP) -> None:
            self._journal.flush(ftp)
            self._journal.refresh(ftp, self._list_dir)

        self._call("reading the journal", refresh)

    # --- listing --------------------------------------------------------------------------

    def _read_lines(self, ftp: ftplib.FTP, command: str) -> list[str]:
        """Run a listing command and return its lines (undecodable bytes kept as surrogates)."""
        lines: list[str] = []
        with ftp.transfercmd(command) as conn, conn.makefile("rb") as stream:
            lines.extend(raw.decode("utf-8", "surrogateescape").rstrip("\r\n") for raw in stream)
            if isinstance(conn, ssl.SSLSocket):
                conn.unwrap()
        ftp.voidresp()
        return lines

    def _list_dir(self, ftp: ftplib.FTP, folder: str) -> Entries:
        """Return the safe entries of ``folder`` with their raw lines; a ``550`` propagates."""
        path = self._abs(folder)
        now = time.time()
        command = f"MLSD {path}" if self._use_mlsd else f"{self._list_cmd} {path}"
        entries: Entries = []
        for line in self._read_lines(ftp, command):
            try:
                entry = parse_mlsd_line(line) if self._use_mlsd else parse_list_line(line, now)
            except ListingParseError as exc:
                # Skipping the line would make its file look deleted: refuse the listing.
                raise LocationUnavailable(
                    f"cannot read the listing of {path}: {exc}", location=self.name
                ) from None
            if entry is not None and self._child(folder, entry.name) is not None:
                entries.append((entry, line))
        return entries

    def _mdtm(self, ftp: ftplib.FTP, rel: str, fallback: int | None) -> int | None:
        """Exact time of ``rel``; ``fallback`` if the server will not say (never drop a file)."""
        try:
            return parse_mdtm_reply(ftp.sendcmd(f"MDTM {self._abs(rel)}"))
        except (ftplib.error_perm, ListingParseError) as exc:
            log.debug("%s: MDTM %s failed (%s); using the listing time", self.name, rel, exc)
            return fallback

    def _scan_dir(
        self, ftp: ftplib.FTP, folder: str, old_cache: Cache
    ) -> tuple[Listing, list[str], Cache, list[str]]:
        """List one folder: (files with meta, sub-folders, LIST-line cache entries, links)."""
        files: Listing = {}
        subdirs: list[str] = []
        links: list[str] = []
        cache: Cache = {}
        now_ns = time.time_ns()
        entries = self._list_dir(ftp, folder)
        if not folder and self._marked and not any(e.name == META_DIR for e, _ in entries):
            raise LocationUnavailable(
                f"the {META_DIR} folder vanished from {self._root}: the folder was replaced or "
                "emptied on the server; holding its deletes",
                location=self.name,
            )
        for entry, line in entries:
            rel = f"{folder}/{entry.name}" if folder else entry.name
            if is_internal(rel):
                self._remove_stale_temp(ftp, rel, entry, now_ns)
                continue
            if entry.is_link:
                links.append(rel)
                continue
            if entry.is_dir:
                subdirs.append(rel)
                continue
            if not entry.is_file:
                continue
            mtime = entry.mtime_ns
            if not self._use_mlsd and self._use_mdtm:
                cached = old_cache.get(rel)
                if cached and cached[0] == line and now_ns - cached[1] > RECENT_NS:
                    mtime = cached[1]
                else:
                    mtime = self._mdtm(ftp, rel, mtime)
                if mtime is not None:
                    cache[rel] = (line, mtime)
            elif mtime is None:
                mtime = self._mdtm(ftp, rel, None)
            if mtime is None:
                raise LocationUnavailable(
                    f"the server gives no time for {rel}", location=self.name, path=rel
                )
            files[rel] = self._meta(rel, entry.size, mtime, entry.tag)
        return files, subdirs, cache, links

    def _remove_stale_temp(
        self, ftp: ftplib.FTP, rel: str, entry: RemoteEntry, now_ns: int
    ) -> None:
        """Delete an upload's temp file left by a crash (older than an hour): nobody else
        ever sees it, but it would take space on the server for ever."""
        name = posixpath.basename(rel)
        if self._read_only:
            return
        if not (entry.is_file and name.startswith(TEMP_PREFIX)) or entry.mtime_ns is None:
            return
        if now_ns - entry.mtime_ns < STALE_TEMP_NS:
            return
        try:
            ftp.delete(self._abs(rel))
            log.info("%s: removed %s left by an interrupted upload", self.name, rel)
        except ftplib.all_errors as exc:
            log.debug("%s: cannot remove stale %s (%s)", self.name, rel, exc)

    def scan(self, prefix: str = "") -> Listing:
        """Walk the tree below ``prefix`` with one MLSD/LIST per folder."""
        start = self._check(prefix.strip("/")) if prefix.strip("/") else ""
        self._refresh_journal()
        old_cache = self._mdtm_cache
        new_cache: Cache = {}
        listing: Listing = {}
        links: set[str] = set()
        pending = [start]
        while pending:
            folder = pending.pop()

            def list_one(ftp: ftplib.FTP, folder: str = folder) -> tuple[
                Listing, list[str], Cache, list[str]
            ]:  # fmt: skip
                return self._scan_dir(ftp, folder, old_cache)

            try:
                files, subdirs, cache, found = self._client.run(
                    f"listing {folder or '/'}", list_one
                )
            except ftplib.error_perm as exc:
                # A folder deleted since its parent was listed is simply gone; a folder that
                # is a link (MLSD showed it as a folder) is held; any other refusal must not
                # be read as "no files here".
                if folder and is_not_found(exc):
                    if self._listed_as_link(folder):
                        links.add(folder)
                        continue
                    if not self._is_dir(folder):
                        if folder == start:
                            self._replace_links(start, links)
                            return {}
                        continue
                raise LocationUnavailable(
                    f"cannot list {self._abs(folder)}: {self._client.scrub(str(exc))}",
                    location=self.name,
                ) from None
            except ftplib.Error as exc:
                raise self._client.unavailable(f"listing {self._abs(folder)}", exc) from None
            listing.update(files)
            links.update(found)
            new_cache.update(cache)
            pending.extend(subdirs)
            self._known_dirs.update(subdirs)
        if start:
            self._mdtm_cache = {**old_cache, **new_cache}
        else:
            self._mdtm_cache = new_cache
            self._last_listing = listing
        self._replace_links(start, links)
        return listing

    def links(self) -> frozenset[str]:
        """Symbolic links the scans met on the server (see ``Location.links``)."""
        return self._links

    def _replace_links(self, prefix: str, found: set[str]) -> None:
        """A scan of ``prefix`` (``""``: everything) found exactly these links there."""
        inside = prefix + "/"
        kept = {p for p in self._links if prefix and p != prefix and not p.startswith(inside)}
        self._links = frozenset(kept | found)

    def _listed_as_link(self, rel: str) -> bool:
        """True when LIST shows ``rel`` as a link (``l``), for a folder MLSD cannot list.

        pyftpdlib's MLSD follows links: a folder replaced by a link to somewhere outside the
        server's root is listed as a folder whose own listing is refused. Only LIST tells.
        """
        if not self._use_mlsd:
            return False
        parent, base = posixpath.split(rel)

        def look(ftp: ftplib.FTP) -> bool:
            try:
                lines = self._read_lines(ftp, f"{self._list_cmd} {self._abs(parent)}")
            except ftplib.error_perm:
                return False
            now = time.time()
            for line in lines:
                with contextlib.suppress(ListingParseError):
                    entry = parse_list_line(line, now)
                    if entry is not None and entry.name == base:
                        return entry.is_link
            return False

        return self._call(f"listing {self._abs(parent)}", look)

    def _is_dir(self, rel: str) -> bool:
        parent, base = posixpath.split(rel)

        def look(ftp: ftplib.FTP) -> bool:
            try:
                entries = self._list_dir(ftp, parent)
            except ftplib.error_perm as exc:
                if is_not_found(exc) and parent:
                    return False
                raise
            return any(e.name == base and e.is_dir for e, _ in entries)

        return self._call(f"listing {self._abs(parent)}", look)

    # --- stat -----------------------------------------------------------------------------

    def stat(self, path: str) -> FileMeta | None:
        """Ask the server now for ``path``'s size and time (None if it is not a file)."""
        return self.stat_many([path])[path]

    def stat_many(self, paths: Iterable[str]) -> dict[str, FileMeta | None]:
        """Ask the server now, one listing per folder (``MLST`` when a folder has one path)."""
        groups: dict[str, list[str]] = defaultdict(list)
        for path in paths:
            groups[posixpath.dirname(self._check(path))].append(path)
        if groups:
            self._refresh_journal()
        result: dict[str, FileMeta | None] = {}
        for folder, group in groups.items():

            def stat_group(ftp: ftplib.FTP, folder: str = folder, group: list[str] = group) -> (
                dict[str, FileMeta | None]
            ):  # fmt: skip
                return self._stat_group(ftp, folder, group)

            result.update(self._call(f"listing {self._abs(folder)}", stat_group))
        return result

    def _stat_group(
        self, ftp: ftplib.FTP, folder: str, group: list[str], journal: bool = True
    ) -> dict[str, FileMeta | None]:
        if len(group) == 1 and self._use_mlsd:
            return {group[0]: self._mlst(ftp, group[0], journal)}
        try:
            entries = self._list_dir(ftp, folder)
        except ftplib.error_perm as exc:
            # 550 says "no such folder"; pyftpdlib says 501, others other codes: ask the parent.
            if is_not_found(exc) or not self._is_folder(ftp, folder):
                return dict.fromkeys(group)
            raise
        by_name = {entry.name: entry for entry, _ in entries}
        result: dict[str, FileMeta | None] = {}
        for path in group:
            entry = by_name.get(posixpath.basename(path))
            if entry is None or not entry.is_file:
                result[path] = None
                continue
            mtime = entry.mtime_ns
            if (not self._use_mlsd and self._use_mdtm) or mtime is None:
                mtime = self._mdtm(ftp, path, mtime)
            if mtime is None:
                result[path] = None
            else:
                result[path] = self._meta(path, entry.size, mtime, entry.tag, journal)
        return result

    def _is_folder(self, ftp: ftplib.FTP, folder: str) -> bool:
        """Whether ``folder`` exists on the server as a folder (the root always does)."""
        if not folder:
            return True
        parent, name = posixpath.split(folder)
        if not self._is_folder(ftp, parent):
            return False
        try:
            entries = self._list_dir(ftp, parent)
        except ftplib.error_perm:
            return False
        return any(entry.name == name and entry.is_dir for entry, _ in entries)

    def _mlst(self, ftp: ftplib.FTP, rel: str, journal: bool = True) -> FileMeta | None:
        try:
            reply = ftp.sendcmd(f"MLST {self._abs(rel)}")
        except ftplib.error_perm as exc:
            if is_not_found(exc):
                return None
            raise
        entry = mlst_entry(reply)
        if entry is None or not entry.is_file:
            return None
        mtime = entry.mtime_ns
        if mtime is None:
            mtime = self._mdtm(ftp, rel, None)
        return None if mtime is None else self._meta(rel, entry.size, mtime, entry.tag, journal)

    def _stat_one(self, ftp: ftplib.FTP, rel: str, journal: bool = True) -> FileMeta | None:
        return self._stat_group(ftp, posixpath.dirname(rel), [rel], journal)[rel]

    # --- reading --------------------------------------------------------------------------

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        """Stream ``path`` from the server; the connection is held until the block exits.

        Do not call this location's other methods from inside the block: FTP cannot
        interleave commands with a transfer (the client raises rather than deadlock).
        """
        self._check(path)
        with self._client.session() as first:
            ftp, conn = self._start_download(first, path)

            def translate(exc: BaseException) -> Exception:
                self._client.drop(exc)
                return self._client.unavailable(f"download of {path}", exc)

            def confirm() -> None:
                try:
                    ftp.voidresp()
                except FTP_ERRORS as exc:
                    raise translate(exc) from None

            stream = DownloadStream(conn, translate, confirm)
            reader = io.BufferedReader(stream, CHUNK_SIZE)
            try:
                yield reader
            finally:
                reader.close()
                if not stream.finish():
                    self._client.drop()  # reply pending or transfer cut: start afresh

    def _start_download(self, ftp: ftplib.FTP, path: str) -> tuple[ftplib.FTP, socket.socket]:
        command = f"RETR {self._abs(path)}"
        for attempt in (1, 2):
            try:
                return ftp, ftp.transfercmd(command)
            except ftplib.error_perm as exc:
                if is_not_found(exc):
                    raise FileVanished(
                        "the file is gone from the server", location=self.name, path=path
                    ) from None
                raise LocationUnavailable(
                    f"download refused: {self._client.scrub(str(exc))}",
                    location=self.name,
                    path=path,
                ) from None
            except Exception as exc:
                broken = self._client.is_broken(exc)
                if broken:
                    self._client.drop(exc)
                if not broken or attempt == 2:
                    raise self._client.unavailable(f"download of {path}", exc) from None
                ftp = self._client.reconnect()
        raise AssertionError("unreachable")  # pragma: no cover


def mlst_entry(reply: str) -> RemoteEntry | None:
    """The entry an ``MLST`` reply describes (None for a folder's own ``cdir`` line)."""
    for line in reply.splitlines()[1:-1]:
        return parse_mlsd_line(line[1:] if line.startswith(" ") else line)
    raise ListingParseError(f"MLST reply without facts: {reply!r}")
