"""The writing half of an SFTP location: uploads (one file or a group), deletes, renames.

Mixed into :class:`app.locations.sftp.location.SftpLocation`, which provides the connection,
names and listing (declared below). Every upload goes to a ``.filesync-tmp-*`` name beside its
target, gets its time, and is renamed into place with ``posix-rename@openssh.com`` (an atomic
replace) where the server offers it, else delete + rename; a guarded write re-checks the
target just before the rename. A group's small files do all that together (:mod:`.group`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import posixpath
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO, cast

import paramiko

from app.errors import FileChanged, FileSyncError, FileVanished, LocationUnavailable
from app.locations.base import (
    CHUNK_SIZE,
    TEMP_PREFIX,
    Capabilities,
    FileMeta,
    WriteJob,
    WriteOutcome,
)
from app.locations.names import parent_folders
from app.locations.remote.journaled import JournaledWrites
from app.locations.sftp import protocol
from app.locations.sftp.connection import SftpConnection
from app.locations.sftp.group import (
    GROUP_FILE_LIMIT,
    GroupPut,
    remove_group,
    rename_group,
    upload_group,
)
from app.locations.sftp.protocol import SFTP_ERRORS, SourceFailed, StatusError, is_not_found

log = logging.getLogger(__name__)

NS = 1_000_000_000


class SftpWrites(JournaledWrites[paramiko.SFTPClient]):
    """Uploads, deletes and renames (mixed into ``SftpLocation``)."""

    capabilities: Capabilities
    _conn: SftpConnection
    #: Folders (relative) known to exist, so a write creates only new ones.
    _known_dirs: set[str]
    _buffer: bytearray
    #: False once the server said it has no posix-rename.
    _posix_rename: bool

    if TYPE_CHECKING:  # provided by the location class (SpecNamed); no runtime placeholder

        @property
        def name(self) -> str: ...

    def _abs(self, rel: str) -> str:
        raise NotImplementedError

    def _check(self, path: str) -> str:
        raise NotImplementedError

    def _meta(self, rel: str, attrs: paramiko.SFTPAttributes, journal: bool = True) -> FileMeta:
        raise NotImplementedError

    def _stat_paths(
        self, sftp: paramiko.SFTPClient, paths: list[str], journal: bool = True
    ) -> dict[str, FileMeta | None]:
        raise NotImplementedError

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
        self._check(path)
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
                        "connection lost during the upload", location=self.name, path=path
                    )
                source.seek(start)
            attrs = self._upload_new(sftp, folder, temp, source, mtime_ns // NS)
            try:
                if check and self._stat_paths(sftp, [path])[path] != expected:
                    raise FileChanged(
                        "changed on the server while syncing; will retry",
                        location=self.name,
                        path=path,
                    )
                self._move(sftp, temp, path)
            except BaseException as exc:
                if not self._conn.is_broken(exc):
                    with contextlib.suppress(*SFTP_ERRORS):
                        protocol.remove(sftp, self._abs(temp))
                raise
            meta = self._meta(path, attrs, journal=False)
            self._note_time(path, mtime_ns, meta)
            alike = expected is not None and (expected.size, expected.mtime_ns // NS) == (
                meta.size,
                meta.mtime_ns // NS,
            )
            return self._journaled(sftp, path, meta, urgent=alike)

        try:
            return self._call(f"upload of {path}", put, path)
        except SourceFailed as exc:
            with contextlib.suppress(FileSyncError):
                self._call(f"cleanup of {temp}", lambda s: protocol.remove(s, self._abs(temp)))
            raise exc.cause from None

    def write_many(
        self, jobs: Sequence[WriteJob], *, parallel_reads: bool = False
    ) -> list[WriteOutcome]:
        """Guarded writes of a group: the small files in three round trips for all of them
        (see :mod:`.group`), each bigger one streamed alone; one outcome per job, in order."""
        outcomes: dict[int, WriteOutcome] = {}
        group: list[tuple[int, WriteJob, GroupPut]] = []
        for i, job in enumerate(jobs):
            try:
                self._check(job.path)
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
            put = GroupPut(self._abs(temp), data, job.mtime_ns // NS, self._abs(job.path))
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
                    self._known_dirs.difference_update(_ancestors(posixpath.dirname(job.path)))
                results[i] = LocationUnavailable(
                    f"upload failed: {put.error}", location=self.name, path=job.path
                )
                continue
            current = put.current
            now: FileMeta | None = None
            if current is not None:
                # a folder or link where the file should go matches no expected version
                is_file = protocol.is_file(current)
                now = self._meta(job.path, current) if is_file else FileMeta(-1, 0)
            if now != job.expected:
                results[i] = FileChanged(
                    "changed on the server while syncing; will retry",
                    location=self.name,
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
                        f"rename failed: {error}", location=self.name, path=job.path
                    )
                    continue
                assert put.attrs is not None
                meta = self._meta(job.path, put.attrs, journal=False)
                self._note_time(job.path, job.mtime_ns, meta)
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
            return protocol.upload(sftp, self._abs(temp), source, mtime_s, self._buffer)
        except StatusError as exc:
            if created or not is_not_found(exc):
                raise
        self._known_dirs.difference_update(_ancestors(folder))
        self._make_dirs(sftp, folder)
        return protocol.upload(sftp, self._abs(temp), source, mtime_s, self._buffer)

    def _note_time(self, path: str, wanted_ns: int, meta: FileMeta) -> None:
        """A server that ignores the time we set: times from it are not compared any more."""
        if self.capabilities.can_set_mtime and meta.mtime_ns // NS != wanted_ns // NS:
            log.warning("%s: the server did not keep the time set on %s; its own times are "
                        "recorded instead", self.name, path)  # fmt: skip
            self.capabilities = dataclasses.replace(self.capabilities, can_set_mtime=False)

    def _make_dirs(self, sftp: paramiko.SFTPClient, folder: str) -> bool:
        """Create each folder of ``folder`` not known to exist; True if any was tried."""
        if folder in self._known_dirs:
            return False
        for parent in reversed(_ancestors(folder)):
            if parent not in self._known_dirs:
                with contextlib.suppress(StatusError):  # exists; or the upload will say why
                    protocol.mkdir(sftp, self._abs(parent))
                self._known_dirs.add(parent)
        return True

    def _move(self, sftp: paramiko.SFTPClient, src: str, dst: str) -> None:
        """Rename ``src`` onto ``dst`` (relative paths)."""
        self._move_abs(sftp, self._abs(src), self._abs(dst))

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
                         self.name)  # fmt: skip
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
        self._check(path)

        def remove(sftp: paramiko.SFTPClient) -> None:
            try:
                protocol.remove(sftp, self._abs(path))
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
                protocol.rmdir(sftp, self._abs(folder))
            except StatusError:
                return
            self._known_dirs.discard(folder)
            folder = posixpath.dirname(folder)

    def rename(self, src: str, dst: str) -> FileMeta:
        """Rename on the server (no copy); missing folders of ``dst`` are created."""
        self._check(src)
        self._check(dst)

        def move(sftp: paramiko.SFTPClient) -> FileMeta:
            self._make_dirs(sftp, posixpath.dirname(dst))
            try:
                self._move(sftp, src, dst)
            except StatusError as exc:
                if is_not_found(exc):
                    raise FileVanished(
                        "the file is gone from the server", location=self.name, path=src
                    ) from None
                raise
            self._prune(sftp, posixpath.dirname(src))
            meta = self._stat_paths(sftp, [dst], journal=False)[dst]
            if meta is None:
                raise FileVanished("the renamed file is gone", location=self.name, path=dst)
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
