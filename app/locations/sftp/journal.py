"""The hub journal's file operations over SFTP (see :mod:`app.locations.remote.hubjournal`).

SFTP v3 lists whole-second times and no content fact, so two same-size saves uploaded within
one second list alike, exactly the FTP case: the same journal serves both. A status reply is an
answer (no folder, file gone, no permission); a broken connection propagates.
"""

from __future__ import annotations

import contextlib
import errno
import io
import posixpath
import stat
import time
import uuid
from collections.abc import Callable

import paramiko

from app.locations.base import TEMP_PREFIX
from app.locations.remote.hubjournal import JOURNAL_DIR, JournalFile, JournalRefused
from app.locations.sftp import protocol, transfer
from app.locations.sftp.protocol import StatusError

NS = 1_000_000_000


class SftpJournalStore:
    """A :class:`~app.locations.remote.hubjournal.JournalStore` on one held SFTP session."""

    def __init__(self, sftp: paramiko.SFTPClient, abs_path: Callable[[str], str]) -> None:
        self._sftp = sftp
        self._abs = abs_path

    def list_journals(self) -> list[JournalFile]:
        """The journal folder's files; none before any FileSync wrote one."""
        try:
            entries = protocol.list_dir(self._sftp, self._abs(JOURNAL_DIR))
        except StatusError:
            return []
        return [
            JournalFile(
                e.filename,
                e.st_size or 0,
                None if e.st_mtime is None else e.st_mtime * NS,
            )
            for e in entries
            if e.st_mode is not None and stat.S_ISREG(e.st_mode)
        ]

    def read_from(self, path: str, offset: int) -> bytes | None:
        """The bytes from ``offset`` on; None if the file is gone."""
        try:
            return transfer.read_from(self._sftp, self._abs(path), offset)
        except StatusError:
            return None

    def append(self, path: str, data: bytes) -> None:
        """Append at the file's end; a refusal (read-only account) is :class:`JournalRefused`.

        A server that cannot write into an existing file (``rclone serve sftp`` without a VFS
        cache) gets the whole file rewritten, old bytes first, and renamed over: readers,
        who read on from the size they saw, still find every line where they expect it.
        """
        try:
            transfer.append(self._sftp, self._abs(path), data)
            return
        except StatusError as exc:
            if exc.errno == errno.EACCES:
                raise JournalRefused(str(exc)) from None
        try:
            self._rewrite(path, data)
        except StatusError as exc:
            raise JournalRefused(str(exc)) from None

    def _rewrite(self, path: str, data: bytes) -> None:
        try:
            old = transfer.read_from(self._sftp, self._abs(path), 0)
        except StatusError as exc:
            if not protocol.is_not_found(exc):
                raise
            old = b""
        temp = f"{posixpath.dirname(path)}/{TEMP_PREFIX}{uuid.uuid4().hex[:16]}"
        buffer = bytearray(protocol.REQUEST_SIZE)
        transfer.upload(
            self._sftp, self._abs(temp), io.BytesIO(old + data), int(time.time()), buffer
        )
        try:
            protocol.rename(self._sftp, self._abs(temp), self._abs(path), posix=True)
        except StatusError:
            with contextlib.suppress(StatusError):
                protocol.remove(self._sftp, self._abs(path))
            protocol.rename(self._sftp, self._abs(temp), self._abs(path), posix=False)

    def make_folder(self, path: str) -> None:
        """Create ``path``; it may exist already."""
        with contextlib.suppress(StatusError):
            protocol.mkdir(self._sftp, self._abs(path))

    def remove(self, path: str) -> None:
        """Delete ``path``; a refusal is ignored."""
        with contextlib.suppress(StatusError):
            protocol.remove(self._sftp, self._abs(path))
