"""Walking an FTP tree: the listing of every file below the root, and the links met there.

Two rules run through it: a listing that fails or cannot be understood raises
:class:`LocationUnavailable` (an "empty" answer would delete files everywhere else), and a
name the server offers that could escape the root is skipped with a warning, never listed
(:meth:`Remote.child`).

LIST mode keeps, per file, the LIST line and the MDTM time from the previous scan and asks
MDTM again only when the line changed (or the time is very recent): 10,000 MDTM round trips
cost seconds, an unchanged tree should cost one LIST per folder.
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import posixpath
import time

from app.errors import LocationUnavailable
from app.locations.base import META_DIR, TEMP_PREFIX, Listing, is_internal
from app.locations.ftp.client import is_not_found
from app.locations.ftp.listing import ListingParseError, RemoteEntry, parse_list_line
from app.locations.ftp.remote import NS, Remote

log = logging.getLogger(__name__)

#: A file whose cached MDTM time is this recent is asked again even if its LIST line did not
#: change: LIST shows minutes, so a same-size edit in the same minute would otherwise be missed.
RECENT_NS = 120 * NS
#: An upload's temp file this old was left by a crash and is removed by the next scan.
STALE_TEMP_NS = 3600 * NS

Cache = dict[str, tuple[str, int]]
Found = tuple[Listing, list[str], Cache, list[str]]


class FtpScanner:
    """Lists a location's tree: what :meth:`Location.scan` and :meth:`Location.links` answer.

    ``marked`` is set once the root is known to hold ``.filesync/``: full scans then insist
    on it. ``last_listing`` is the latest full scan (the journal's housekeeping keeps the
    entries it still matches).
    """

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.marked = False
        self.last_listing: Listing | None = None
        #: LIST mode: path -> (LIST line, MDTM time) from the last scan.
        self._mdtm_cache: Cache = {}
        #: Symbolic links the last scans met (relative paths).
        self._links: frozenset[str] = frozenset()

    def scan(self, prefix: str = "") -> Listing:
        """Walk the tree below ``prefix`` with one MLSD/LIST per folder."""
        remote = self.remote
        start = remote.check(prefix.strip("/")) if prefix.strip("/") else ""
        remote.refresh_journal()
        old_cache = self._mdtm_cache
        new_cache: Cache = {}
        listing: Listing = {}
        links: set[str] = set()
        pending = [start]
        while pending:
            folder = pending.pop()

            def list_one(ftp: ftplib.FTP, folder: str = folder) -> Found:
                return self._scan_dir(ftp, folder, old_cache)

            try:
                files, subdirs, cache, found = remote.client.run(
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
                    f"cannot list {remote.abs(folder)}: {remote.client.scrub(str(exc))}",
                    location=remote.name,
                ) from None
            except ftplib.Error as exc:
                raise remote.client.unavailable(f"listing {remote.abs(folder)}", exc) from None
            listing.update(files)
            links.update(found)
            new_cache.update(cache)
            pending.extend(subdirs)
            remote.known_dirs.update(subdirs)
        if start:
            self._mdtm_cache = {**old_cache, **new_cache}
        else:
            self._mdtm_cache = new_cache
            self.last_listing = listing
        self._replace_links(start, links)
        return listing

    def _scan_dir(self, ftp: ftplib.FTP, folder: str, old_cache: Cache) -> Found:
        """List one folder: (files with meta, sub-folders, LIST-line cache entries, links)."""
        remote = self.remote
        files: Listing = {}
        subdirs: list[str] = []
        links: list[str] = []
        cache: Cache = {}
        now_ns = time.time_ns()
        entries = remote.list_dir(ftp, folder)
        if not folder and self.marked and not any(e.name == META_DIR for e, _ in entries):
            raise LocationUnavailable(
                f"the {META_DIR} folder vanished from {remote.root}: the folder was replaced "
                "or emptied on the server; holding its deletes",
                location=remote.name,
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
            if not remote.use_mlsd and remote.use_mdtm:
                cached = old_cache.get(rel)
                if cached and cached[0] == line and now_ns - cached[1] > RECENT_NS:
                    mtime = cached[1]
                else:
                    mtime = remote.mdtm(ftp, rel, mtime)
                if mtime is not None:
                    cache[rel] = (line, mtime)
            elif mtime is None:
                mtime = remote.mdtm(ftp, rel, None)
            if mtime is None:
                raise LocationUnavailable(
                    f"the server gives no time for {rel}", location=remote.name, path=rel
                )
            files[rel] = remote.meta(rel, entry.size, mtime, entry.tag)
        return files, subdirs, cache, links

    def _remove_stale_temp(
        self, ftp: ftplib.FTP, rel: str, entry: RemoteEntry, now_ns: int
    ) -> None:
        """Delete an upload's temp file left by a crash (older than an hour): nobody else
        ever sees it, but it would take space on the server for ever."""
        name = posixpath.basename(rel)
        if self.remote.read_only:
            return
        if not (entry.is_file and name.startswith(TEMP_PREFIX)) or entry.mtime_ns is None:
            return
        if now_ns - entry.mtime_ns < STALE_TEMP_NS:
            return
        try:
            ftp.delete(self.remote.abs(rel))
            log.info("%s: removed %s left by an interrupted upload", self.remote.name, rel)
        except ftplib.all_errors as exc:
            log.debug("%s: cannot remove stale %s (%s)", self.remote.name, rel, exc)

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
        remote = self.remote
        if not remote.use_mlsd:
            return False
        parent, base = posixpath.split(rel)

        def look(ftp: ftplib.FTP) -> bool:
            try:
                lines = remote.read_lines(ftp, f"{remote.list_cmd} {remote.abs(parent)}")
            except ftplib.error_perm:
                return False
            now = time.time()
            for line in lines:
                with contextlib.suppress(ListingParseError):
                    entry = parse_list_line(line, now)
                    if entry is not None and entry.name == base:
                        return entry.is_link
            return False

        return remote.call(f"listing {remote.abs(parent)}", look)

    def _is_dir(self, rel: str) -> bool:
        remote = self.remote
        parent, base = posixpath.split(rel)

        def look(ftp: ftplib.FTP) -> bool:
            try:
                entries = remote.list_dir(ftp, parent)
            except ftplib.error_perm as exc:
                if is_not_found(exc) and parent:
                    return False
                raise
            return any(e.name == base and e.is_dir for e, _ in entries)

        return remote.call(f"listing {remote.abs(parent)}", look)
