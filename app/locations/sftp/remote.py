"""The server folder an SFTP location syncs: its session, root, names and the files' versions.

One :class:`SftpRemote` is shared by :class:`~app.locations.sftp.location.SftpLocation` and
the writer it holds (:mod:`.writer`), as the FTP location's parts share
:class:`~app.locations.ftp.remote.Remote`, so neither borrows the other's attributes. It holds
what both need: the session and one way to run requests on it (:meth:`SftpRemote.call`), the
absolute path of a relative one, the rules for names, the hub journal that tags listed files,
the folders known to exist, and what the server turned out to offer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import paramiko

from app.errors import FileSyncError, LocationUnavailable, UnsafePath
from app.locations.base import Capabilities, FileMeta, check_relpath
from app.locations.names import NamePolicy
from app.locations.remote.hubjournal import HubJournal
from app.locations.sftp import protocol
from app.locations.sftp.connection import SftpConnection
from app.locations.sftp.journal import SftpJournalStore
from app.locations.sftp.protocol import SFTP_ERRORS
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


class SftpRemote:
    """The session, the root and the journal, shared by an SFTP location and its writer."""

    def __init__(self, spec: LocationSpec, timeout: float, *, read_only: bool = False) -> None:
        self.name = spec.redacted
        #: Look without touching (``run --dry-run``): create, mark and clean up nothing.
        self.read_only = read_only
        self.conn = SftpConnection(spec, timeout)
        #: The folder on the server; ``~`` is resolved to the login's home at ``open()``.
        self.root = spec.path
        #: What the location declares; ``can_set_mtime`` drops if the server ignores our times.
        self.capabilities = CAPABILITIES
        #: Folders (relative) known to exist, so a write creates only new ones.
        self.known_dirs: set[str] = {""}
        #: Exact versions of our uploads, and of other FileSyncs' (see ``remote.hubjournal``).
        self.journal = HubJournal(self.name)
        self._warned_names: set[str] = set()

    def call(
        self, what: str, action: Callable[[paramiko.SFTPClient], T], path: str | None = None
    ) -> T:
        """Run ``action`` on the session; turn a refusal into one FileSync error."""
        try:
            return self.conn.run(what, action)
        except FileSyncError:
            raise
        except SFTP_ERRORS as exc:
            raise LocationUnavailable(
                f"{what} failed on {self.conn.address}: {exc}", location=self.name, path=path
            ) from None

    # --- names ----------------------------------------------------------------------------

    def abs(self, rel: str) -> str:
        """The server's path of ``rel`` (``""``: the root)."""
        return f"{self.root.rstrip('/')}/{rel}" if rel else self.root

    def check(self, path: str) -> str:
        """``path`` if it is a relative path this kind can hold; else :class:`UnsafePath`."""
        check_relpath(path)
        why = SFTP_NAMES.refusal(path)
        if why is not None:
            raise UnsafePath(f"cannot hold the name {path!r} on an SFTP server: {why}")
        return path

    def child(self, folder: str, name: str) -> str | None:
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

    # --- versions -------------------------------------------------------------------------

    def meta(self, rel: str, attrs: paramiko.SFTPAttributes, journal: bool = True) -> FileMeta:
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
        tag = self.journal.tag(rel, attrs.st_size, mtime_ns)
        if not tag and attrs.st_mtime >= int(time.time()) - RACY_S:
            tag = RACY_TAG
        return FileMeta(attrs.st_size, mtime_ns, tag)

    def stat_paths(
        self, sftp: paramiko.SFTPClient, paths: list[str], journal: bool = True
    ) -> dict[str, FileMeta | None]:
        """LSTAT every path in one round trip: its meta, None where there is no file."""
        found = protocol.lstat_many(sftp, [self.abs(p) for p in paths])
        return {
            p: self.meta(p, a, journal) if a is not None and protocol.is_file(a) else None
            for p, a in zip(paths, found, strict=True)
        }

    def note_time(self, path: str, wanted_ns: int, meta: FileMeta) -> None:
        """A server that ignores the time we set: times from it are not compared any more."""
        if self.capabilities.can_set_mtime and meta.mtime_ns // NS != wanted_ns // NS:
            log.warning("%s: the server did not keep the time set on %s; its own times are "
                        "recorded instead", self.name, path)  # fmt: skip
            self.capabilities = self.capabilities._replace(can_set_mtime=False)

    def journal_store(self, sftp: paramiko.SFTPClient) -> SftpJournalStore:
        """The hub journal's file operations on the held session ``sftp``."""
        return SftpJournalStore(sftp, self.abs)
