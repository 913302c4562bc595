"""Changing files on an FTP server: atomic uploads, deletes, renames, and the hub journal.

* **Writes** go to a ``.filesync-tmp-*`` name in the target folder and are renamed onto the
  real name, so no one ever sees half a file. The time is set with ``MFMT`` or, on servers
  such as vsftpd, the ``MDTM YYYYMMDDHHMMSS path`` form (probed once at ``open()``). Where no
  time can be set, a write returns the server's own time, which the engine records, so our
  upload never looks like a newer remote edit.
* Every upload and rename is recorded in the hub journal (``remote.journaled``), so other
  FileSyncs sharing the server can tell it from a save made in the same second.
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import posixpath
import uuid
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from app.errors import FileChanged, FileVanished, LocationUnavailable
from app.locations.base import TEMP_PREFIX, FileMeta
from app.locations.ftp.client import is_not_found
from app.locations.ftp.journal import FtpJournalStore
from app.locations.ftp.listing import (
    ListingParseError,
    format_ftp_time,
    parse_ftp_time,
    parse_mfmt_reply,
)
from app.locations.ftp.reader import FtpReader
from app.locations.ftp.remote import NS, Remote, mlst_entry
from app.locations.ftp.transfer import SourceFailed, upload
from app.locations.names import parent_folders
from app.locations.remote.journaled import JournaledWrites

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Bytes per read and send while uploading: large enough for full-speed sends, small enough
#: to stay clear of the allocator's mmap threshold.
UPLOAD_CHUNK = 256 * 1024


class FtpWriter(JournaledWrites[ftplib.FTP]):
    """What :meth:`Location.write`, ``guarded_write``, ``delete``, ``rename`` and ``batch`` do
    on a server folder. ``reader`` checks the server's copy just before a guarded rename."""

    _journal_errors = ftplib.all_errors

    def __init__(self, remote: Remote, reader: FtpReader) -> None:
        self.remote = remote
        self.reader = reader
        #: Upload buffer, reused (uploads are serialised by the connection lock).
        self.buffer = bytearray(UPLOAD_CHUNK)
        self._batching = 0
        self._journal = remote.journal

    def write(
        self, path: str, source: BinaryIO, mtime_ns: int, check: bool, expected: FileMeta | None
    ) -> FileMeta:
        """Upload to a temporary name beside ``path``, rename it into place, stamp the time.

        With ``check``, ``path`` must still hold ``expected`` after the upload, just before
        the rename (one ``MLST``): the upload may take minutes, and checking then leaves the
        smallest window for a save on the server to be overwritten. A broken connection is
        retried once from the start if ``source`` can seek back; a failing ``source`` leaves
        nothing behind and its error is re-raised unchanged.
        """
        remote = self.remote
        remote.check(path)
        folder = posixpath.dirname(path)
        temp = posixpath.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex[:16]}")
        start = source.tell() if source.seekable() else None
        attempts = 0

        def put(ftp: ftplib.FTP) -> FileMeta:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                if start is None:
                    raise LocationUnavailable(
                        "connection lost during the upload", location=remote.name, path=path
                    )
                source.seek(start)
            size = self._upload_new(ftp, folder, temp, source)
            try:
                if check and self.reader.stat_one(ftp, path) != expected:
                    raise FileChanged(
                        "changed on the server while syncing; will retry",
                        location=remote.name,
                        path=path,
                    )
                meta = self._commit(ftp, temp, path, mtime_ns, size)
            except BaseException:
                with contextlib.suppress(ftplib.Error, OSError, EOFError):
                    ftp.delete(remote.abs(temp))
                raise
            # A same-size replacement within the same second lists exactly like the file it
            # replaced: only its journal line tells, so that line is sent at once.
            alike = expected is not None and (expected.size, expected.mtime_ns // NS) == (
                meta.size,
                meta.mtime_ns // NS,
            )
            return self._journaled(ftp, path, meta, urgent=alike)

        try:
            return remote.call(f"upload of {path}", put, path)
        except SourceFailed as exc:
            with contextlib.suppress(ftplib.Error, LocationUnavailable):
                remote.call(f"cleanup of {temp}", lambda ftp: ftp.delete(remote.abs(temp)))
            raise exc.cause from None

    def _upload_new(self, ftp: ftplib.FTP, folder: str, temp: str, source: BinaryIO) -> int:
        """STOR ``temp``, creating its folders; a folder deleted behind our back is remade."""
        created = self._make_dirs(ftp, folder)
        try:
            return upload(ftp, self.remote.abs(temp), source, self.buffer)
        except ftplib.error_perm as exc:
            if created or not is_not_found(exc):
                raise
        self.remote.known_dirs.difference_update(_ancestors(folder))
        self._make_dirs(ftp, folder)
        return upload(ftp, self.remote.abs(temp), source, self.buffer)

    def _make_dirs(self, ftp: ftplib.FTP, folder: str) -> bool:
        """MKD each folder of ``folder`` not known to exist; return True if any was sent."""
        known = self.remote.known_dirs
        if folder in known:
            return False
        for parent in reversed(_ancestors(folder)):
            if parent not in known:
                with contextlib.suppress(ftplib.error_perm):  # exists; or STOR will say why
                    ftp.mkd(self.remote.abs(parent))
                known.add(parent)
        return True

    def _move(self, ftp: ftplib.FTP, src: str, dst: str) -> None:
        """RNFR/RNTO ``src`` onto ``dst``; if the server will not overwrite, delete ``dst``."""
        remote = self.remote
        try:
            ftp.sendcmd(f"RNFR {remote.abs(src)}")
        except ftplib.error_perm as exc:
            if is_not_found(exc):
                raise FileVanished(
                    "the file is gone from the server", location=remote.name, path=src
                ) from None
            raise
        try:
            ftp.voidcmd(f"RNTO {remote.abs(dst)}")
        except ftplib.error_perm:
            log.debug("%s: RNTO onto existing %s refused; deleting it first", remote.name, dst)
            with contextlib.suppress(ftplib.error_perm):
                ftp.delete(remote.abs(dst))
            ftp.sendcmd(f"RNFR {remote.abs(src)}")
            ftp.voidcmd(f"RNTO {remote.abs(dst)}")

    def _commit(self, ftp: ftplib.FTP, temp: str, path: str, mtime_ns: int, size: int) -> FileMeta:
        """Stamp the uploaded temp file and rename it into place, in one pipelined exchange.

        The time goes on the temp file first (a rename keeps it), so a failure part-way never
        touches the file already at ``path``. With MLSD, an ``MLST`` of the result rides along
        for the listing's own tag (its ``unique``).
        """
        remote = self.remote
        stamp = format_ftp_time(mtime_ns)
        commands = [f"RNFR {remote.abs(temp)}", f"RNTO {remote.abs(path)}"]
        if remote.use_mfmt:
            commands.insert(0, f"MFMT {stamp} {remote.abs(temp)}")
        elif remote.mdtm_set:
            commands.insert(0, f"MDTM {stamp} {remote.abs(temp)}")
        stamping = len(commands) == 3
        if remote.use_mlsd:
            commands.append(f"MLST {remote.abs(path)}")
        replies = remote.client.pipeline(ftp, commands)
        stamped = replies[0] if stamping else None
        rnfr, rnto = replies[int(stamping) : int(stamping) + 2]
        listed = replies[-1] if remote.use_mlsd else None
        if isinstance(rnfr, ftplib.Error):
            raise rnfr
        if isinstance(rnto, ftplib.Error):
            self._move(ftp, temp, path)  # the server will not overwrite: delete, then rename
            listed = None  # that MLST saw the file before
        return self._stamped_meta(ftp, path, stamp, size, stamped, listed=listed)

    def _stamped_meta(
        self,
        ftp: ftplib.FTP,
        path: str,
        stamp: str,
        size: int,
        reply: str | ftplib.Error | None,
        *,
        listed: str | ftplib.Error | None,
    ) -> FileMeta:
        """Return the meta a scan will report for the file just written, tagged with the
        listing's own tag only (the journal adds its version).

        That is the time we set when the listing is exact (MLSD/MDTM) and setting worked;
        otherwise whatever the server lists now (its own clock, or LIST minutes).
        """
        remote = self.remote
        tag: int | None = 0
        if remote.use_mlsd:
            tag = None
            with contextlib.suppress(ListingParseError):
                entry = mlst_entry(listed) if isinstance(listed, str) else None
                tag = entry.tag if entry is not None and entry.is_file else None
        if isinstance(reply, ftplib.Error):
            log.warning("%s: could not set the time of %s: %s", remote.name, path, reply)
        elif reply is not None and (remote.use_mlsd or remote.use_mdtm) and tag is not None:
            if not remote.use_mfmt:
                return FileMeta(size, parse_ftp_time(stamp), tag)
            with contextlib.suppress(ListingParseError):
                return FileMeta(size, parse_mfmt_reply(reply), tag)
        meta = self.reader.stat_one(ftp, path, journal=False)
        if meta is None:
            raise FileVanished(
                "the file vanished right after upload", location=remote.name, path=path
            )
        return meta

    def delete(self, path: str) -> None:
        """DELE ``path`` and RMD the folders it leaves empty; a missing file is fine."""
        remote = self.remote
        remote.check(path)

        def remove(ftp: ftplib.FTP) -> None:
            try:
                ftp.delete(remote.abs(path))
            except ftplib.error_perm as exc:
                if not is_not_found(exc) or self.reader.stat_one(ftp, path) is not None:
                    raise
            self._prune(ftp, posixpath.dirname(path))
            self._journal.forget(path)
            self._send_journal(ftp)

        remote.call(f"delete of {path}", remove, path)

    def _prune(self, ftp: ftplib.FTP, folder: str) -> None:
        """RMD ``folder`` and its parents while empty (the server refuses non-empty ones)."""
        while folder:
            try:
                ftp.rmd(self.remote.abs(folder))
            except ftplib.error_perm:
                return
            self.remote.known_dirs.discard(folder)
            folder = posixpath.dirname(folder)

    def rename(self, src: str, dst: str) -> FileMeta:
        """RNFR/RNTO on the server (no copy); missing folders of ``dst`` are created."""
        remote = self.remote
        remote.check(src)
        remote.check(dst)

        def move(ftp: ftplib.FTP) -> FileMeta:
            self._make_dirs(ftp, posixpath.dirname(dst))
            self._move(ftp, src, dst)
            self._prune(ftp, posixpath.dirname(src))
            meta = self.reader.stat_one(ftp, dst, journal=False)
            if meta is None:
                raise FileVanished("the renamed file is gone", location=remote.name, path=dst)
            self._journal.forget(src)
            return self._journaled(ftp, dst, meta)

        return remote.call(f"rename of {src}", move, src)

    # --- the hub journal (the rest is JournaledWrites') --------------------------------------

    def _call(self, what: str, action: Callable[[ftplib.FTP], T], path: str | None = None) -> T:
        return self.remote.call(what, action, path)

    def _journal_store(self, conn: ftplib.FTP) -> FtpJournalStore:
        return self.remote.journal_store(conn)


def _ancestors(folder: str) -> list[str]:
    """``"a/b/c"`` -> ``["a/b/c", "a/b", "a"]`` (``""`` for the root has none)."""
    return [folder, *parent_folders(folder)] if folder else []
