"""The writing half of an SFTP location: uploads (one file or a group), deletes, renames.

:class:`SftpWriter` is a part :class:`~app.locations.sftp.location.SftpLocation` holds; both
work over one :class:`~app.locations.sftp.remote.SftpRemote` (session, root, names, journal,
folders known to exist). Every upload goes to a ``.filesync-tmp-*`` name beside its
target, gets its time, and is renamed into place with ``posix-rename@openssh.com`` (an atomic
replace) where the server offers it, else delete + rename; a guarded write re-checks the
target just before the rename. A group's small files do all that together (:mod:`.group`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import posixpath
import uuid
from collections.abc import Callable, Sequence
from typing import BinaryIO, TypeVar, cast

import paramiko

from app.errors import FileChanged, FileSyncError, FileVanished, LocationUnavailable
from app.locations.base import (
    CHUNK_SIZE,
    TEMP_PREFIX,
    FileMeta,
    WriteJob,
    WriteOutcome,
)
from app.locations.names import parent_folders
from app.locations.remote.journaled import JournaledWrites
from app.locations.sftp import protocol
from app.locations.sftp.group import (
    GROUP_FILE_LIMIT,
    GroupPut,
    remove_group,
    rename_group,
    upload_group,
)
from app.locations.sftp.journal import SftpJournalStore
from app.locations.sftp.protocol import SFTP_ERRORS, StatusError, is_not_found
from app.locations.sftp.remote import NS, SftpRemote
from app.locations.sftp.transfer import SourceFailed, upload

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Bytes read from the source per round of WRITE requests.
UPLOAD_BUFFER = 256 * 1024


class SftpWriter(JournaledWrites[paramiko.SFTPClient]):
    """What :meth:`Location.write`, ``guarded_write``, ``write_many``, ``delete``, ``rename``
    and ``batch`` do on a server folder (a part the location holds, over its ``remote``)."""

    _journal_errors = SFTP_ERRORS

    def __init__(self, remote: SftpRemote) -> None:
        self.remote = remote
        self._journal = remote.journal
        self._batching = 0
        #: Upload buffer, reused (uploads are serialised by the session).
        self._buffer = bytearray(UPLOAD_BUFFER)
        #: False once the server said it has no posix-rename.
        self._posix_rename = True

    def _call(
        self, what: str, action: Callable[[paramiko.SFTPClient], T], path: str | None = None
    ) -> T:
        return self.remote.call(what, action, path)

    def _journal_store(self, conn: paramiko.SFTPClient) -> SftpJournalStore:
        return self.remote.journal_store(conn)

    def write(self, path: str, source: BinaryIO, mtime_ns: int) -> FileMeta:
        """Upload to a temporary name beside ``path``, stamp it, rename it into place."""
        return self._write(path, source, mtime_ns, check=False, expected=None)

    def guarded_write(
        self, path: str, source: BinaryIO, mtime_ns: int, expected: FileMeta | None
    ) -> FileMeta:
        """Like :meth:`write`, checking ``expected`` after the upload, just before the rename."""
        return self._write(path, source, mtime_ns, check=True, expected=expected)

    def _write(
        self, path: str, source: BinaryIO, mtime_ns: int, check: bool, expected: FileMeta | None
    ) -> FileMeta:
        remote = self.remote
        remote.check(path)
        folder = posixpath.dirname(path)
        temp = posixpath.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex[:16]}")
        start = source.tell() if source.seekable() else None
        attempts = 0

        def put(sftp: paramiko.SFTPClient) -> FileMeta:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                if start is None:
                    raise LocationUnavailable(
                        "connection lost during the upload", location=self.remote.name, path=path
                    )
                source.seek(start)
            attrs = self._upload_new(sftp, folder, temp, source, mtime_ns // NS)
            try:
                if check and self.remote.stat_paths(sftp, [path])[path] != expected:
                    raise FileChanged(
                        "changed on the server while syncing; will retry",
                        location=self.remote.name,
                        path=path,
                    )
                self._move(sftp, temp, path)
            except BaseException as exc:
                if not self.remote.conn.is_broken(exc):
                    with contextlib.suppress(*SFTP_ERRORS):
                        protocol.remove(sftp, self.remote.abs(temp))
                raise
            meta = self.remote.meta(path, attrs, journal=False)
            self.remote.note_time(path, mtime_ns, meta)
            alike = expected is not None and (expected.size, expected.mtime_ns // NS) == (
                meta.size,
                meta.mtime_ns // NS,
            )
            return self._journaled(sftp, path, meta, urgent=alike)

        try:
            return self._call(f"upload of {path}", put, path)
        except SourceFailed as exc:
            with contextlib.suppress(FileSyncError):
                self._call(
                    f"cleanup of {temp}", lambda s: protocol.remove(s, self.remote.abs(temp))
                )
            raise exc.cause from None

    def write_many(
        self, jobs: Sequence[WriteJob], *, parallel_reads: bool = False
    ) -> list[WriteOutcome]:
        """Guarded writes of a group: the small files in three round trips for all of them
        (see :mod:`.group`), each bigger one streamed alone; one outcome per job, in order."""
        remote = self.remote
        outcomes: dict[int, WriteOutcome] = {}
        group: list[tuple[int, WriteJob, GroupPut]] = []
        for i, job in enumerate(jobs):
            try:
                self.remote.check(job.path)
                with job.open_source() as source:
                    data = source.read(GROUP_FILE_LIMIT + 1)
                    if len(data) > GROUP_FILE_LIMIT:
                        stream = io.BufferedReader(_Joined(data, source), CHUNK_SIZE)
                        outcomes[i] = self.guarded_write(
                            job.path, cast(BinaryIO, stream), job.mtime_ns, job.expected
                        )
                        continue
            except (FileSyncError, OSError) as exc:
                outcomes[i] = exc
                continue
            temp = posixpath.join(
                posixpath.dirname(job.path), f"{TEMP_PREFIX}{uuid.uuid4().hex[:16]}"
            )
            put = GroupPut(remote.abs(temp), data, job.mtime_ns // NS, remote.abs(job.path))
            group.append((i, job, put))
        if group:
            try:
                outcomes.update(self._call("upload of a group", lambda s: self._land(s, group)))
            except FileSyncError as exc:
                outcomes.update((i, exc) for i, _, _ in group)
        return [outcomes[i] for i in range(len(jobs))]

    def _land(
        self, sftp: paramiko.SFTPClient, group: list[tuple[int, WriteJob, GroupPut]]
    ) -> dict[int, WriteOutcome]:
        for folder in sorted({posixpath.dirname(job.path) for _, job, _ in group}):
            self._make_dirs(sftp, folder)
        for _, _, put in group:
            put.attrs = put.current = put.error = None
        upload_group(sftp, [put for _, _, put in group])
        results: dict[int, WriteOutcome] = {}
        ready: list[tuple[int, WriteJob, GroupPut]] = []
        for i, job, put in group:
            if put.error is not None:
                if is_not_found(put.error):  # a folder removed behind our back: made next time
                    self.remote.known_dirs.difference_update(
                        _ancestors(posixpath.dirname(job.path))
                    )
                results[i] = LocationUnavailable(
                    f"upload failed: {put.error}", location=self.remote.name, path=job.path
                )
                continue
            current = put.current
            now: FileMeta | None = None
            if current is not None:
                # a folder or link where the file should go matches no expected version
                is_file = protocol.is_file(current)
                now = self.remote.meta(job.path, current) if is_file else FileMeta(-1, 0)
            if now != job.expected:
                results[i] = FileChanged(
                    "changed on the server while syncing; will retry",
                    location=self.remote.name,
                    path=job.path,
                )
                continue
            ready.append((i, job, put))
        moved = self._move_all(sftp, [(put.temp, put.target) for _, _, put in ready])
        urgent = False
        self._batching += 1
        try:
            for (i, job, put), error in zip(ready, moved, strict=True):
                if error is not None:
                    results[i] = LocationUnavailable(
                        f"rename failed: {error}", location=self.remote.name, path=job.path
                    )
                    continue
                assert put.attrs is not None
                meta = self.remote.meta(job.path, put.attrs, journal=False)
                self.remote.note_time(job.path, job.mtime_ns, meta)
                expected = job.expected
                urgent = urgent or (
                    expected is not None
                    and (expected.size, expected.mtime_ns // NS) == (meta.size, meta.mtime_ns // NS)
                )
                results[i] = self._journaled(sftp, job.path, meta)
        finally:
            self._batching -= 1
        self._send_journal(sftp, urgent)
        leftovers = [put.temp for i, _, put in group if not isinstance(results[i], FileMeta)]
        if leftovers:
            remove_group(sftp, leftovers)
        return results

    def _move_all(
        self, sftp: paramiko.SFTPClient, moves: list[tuple[str, str]]
    ) -> list[StatusError | None]:
        """Rename every (temp, target) pair, all at once where posix-rename replaces."""
        if self._posix_rename:
            results = rename_group(sftp, moves, posix=True)
            if not any(protocol.unsupported(r) for r in results if r is not None):
                return results
            self._posix_rename = False
        done: list[StatusError | None] = []
        for temp, target in moves:
            try:
                self._move_abs(sftp, temp, target)
                done.append(None)
            except StatusError as exc:
                done.append(exc)
        return done

    def _upload_new(
        self, sftp: paramiko.SFTPClient, folder: str, temp: str, source: BinaryIO, mtime_s: int
    ) -> paramiko.SFTPAttributes:
        """Upload ``temp``, creating its folders; a folder deleted behind our back is remade."""
        created = self._make_dirs(sftp, folder)
        try:
            return upload(sftp, self.remote.abs(temp), source, mtime_s, self._buffer)
        except StatusError as exc:
            if created or not is_not_found(exc):
                raise
        self.remote.known_dirs.difference_update(_ancestors(folder))
        self._make_dirs(sftp, folder)
        return upload(sftp, self.remote.abs(temp), source, mtime_s, self._buffer)

    def _make_dirs(self, sftp: paramiko.SFTPClient, folder: str) -> bool:
        """Create each folder of ``folder`` not known to exist; True if any was tried."""
        if folder in self.remote.known_dirs:
            return False
        for parent in reversed(_ancestors(folder)):
            if parent not in self.remote.known_dirs:
                with contextlib.suppress(StatusError):  # exists; or the upload will say why
                    protocol.mkdir(sftp, self.remote.abs(parent))
                self.remote.known_dirs.add(parent)
        return True

    def _move(self, sftp: paramiko.SFTPClient, src: str, dst: str) -> None:
        """Rename ``src`` onto ``dst`` (relative paths)."""
        self._move_abs(sftp, self.remote.abs(src), self.remote.abs(dst))

    def _move_abs(self, sftp: paramiko.SFTPClient, src: str, dst: str) -> None:
        """Rename ``src`` onto ``dst``: atomically where the server offers posix-rename."""
        if self._posix_rename:
            try:
                protocol.rename(sftp, src, dst, posix=True)
                return
            except StatusError as exc:
                if not protocol.unsupported(exc):
                    raise
                self._posix_rename = False
                log.info("%s: no posix-rename on this server: replacing by delete + rename",
                         self.remote.name)  # fmt: skip
        try:
            protocol.rename(sftp, src, dst, posix=False)
        except StatusError as exc:
            if is_not_found(exc):
                raise
            with contextlib.suppress(StatusError):
                protocol.remove(sftp, dst)
            protocol.rename(sftp, src, dst, posix=False)

    def delete(self, path: str) -> None:
        """Delete ``path`` and the folders it leaves empty; a missing file is fine."""
        self.remote.check(path)

        def remove(sftp: paramiko.SFTPClient) -> None:
            try:
                protocol.remove(sftp, self.remote.abs(path))
            except StatusError as exc:
                if not is_not_found(exc):
                    raise
            self._prune(sftp, posixpath.dirname(path))
            self._journal.forget(path)
            self._send_journal(sftp)

        self._call(f"delete of {path}", remove, path)

    def _prune(self, sftp: paramiko.SFTPClient, folder: str) -> None:
        """Remove ``folder`` and its parents while empty (the server refuses non-empty ones)."""
        while folder:
            try:
                protocol.rmdir(sftp, self.remote.abs(folder))
            except StatusError:
                return
            self.remote.known_dirs.discard(folder)
            folder = posixpath.dirname(folder)

    def rename(self, src: str, dst: str) -> FileMeta:
        """Rename on the server (no copy); missing folders of ``dst`` are created."""
        self.remote.check(src)
        self.remote.check(dst)

        def move(sftp: paramiko.SFTPClient) -> FileMeta:
            self._make_dirs(sftp, posixpath.dirname(dst))
            try:
                self._move(sftp, src, dst)
            except StatusError as exc:
                if is_not_found(exc):
                    raise FileVanished(
                        "the file is gone from the server", location=self.remote.name, path=src
                    ) from None
                raise
            self._prune(sftp, posixpath.dirname(src))
            meta = self.remote.stat_paths(sftp, [dst], journal=False)[dst]
            if meta is None:
                raise FileVanished("the renamed file is gone", location=self.remote.name, path=dst)
            self._journal.forget(src)
            return self._journaled(sftp, dst, meta)

        return self._call(f"rename of {src}", move, src)


class _Joined(io.RawIOBase):
    """``first`` (already read) followed by the rest of ``rest``: a big file of a group."""

    def __init__(self, first: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._first = memoryview(first)
        self._rest = rest

    def readable(self) -> bool:
        """Read-only."""
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """The next bytes: what was read first, then the source's own."""
        if self._first:
            count = min(len(buffer), len(self._first))
            buffer[:count] = self._first[:count]
            self._first = self._first[count:]
            return count
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _ancestors(folder: str) -> list[str]:
    """``"a/b/c"`` -> ``["a/b/c", "a/b", "a"]`` (``""`` for the root has none)."""
    return [folder, *parent_folders(folder)] if folder else []
