"""A batch's temp files, written one job at a time in Python (see :mod:`.batch`).

A batch (:mod:`app.locations.folder.batch`) and its C speedup
(:mod:`app.locations.folder.fastcopy`) both stage copies as temp files next to their final
names and fall back to these Python steps for any file the C code cannot do; this module holds
what the two share (the job records, the folders opened once per batch, the temp names) so
that neither has to import the other.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from app.errors import FileSyncError
from app.locations.base import CHUNK_SIZE, TEMP_PREFIX, FileMeta, WriteJob, WriteOutcome
from app.locations.names import check_posix_relpath


class FolderTarget(Protocol):
    """What a batch needs of the folder it writes into (:class:`FolderLocation`)."""

    def folder_for_writing(
        self, folders: list[str], path: str
    ) -> contextlib.AbstractContextManager[int]:
        """The folder ``folders`` (made if missing) to write ``path`` into."""

    def replace_temp(
        self,
        dir_fd: int,
        name: str,
        path: str,
        tmp: str,
        *,
        check: bool,
        expected: FileMeta | None,
    ) -> FileMeta:
        """Rename ``tmp`` over ``name`` if it still holds ``expected`` (old version trashed)."""

    def wrote(self, path: str, meta: FileMeta) -> None:
        """``path`` now holds the copy just renamed there, which reports ``meta``."""

    def wrote_group(self, copies: list[tuple[str, FileMeta]]) -> None:
        """:meth:`wrote` for each of ``copies``, renamed there together."""


#: Temp names: a random part drawn once a process, then a counter (O_EXCL refuses a clash).
_TEMP_RUN = os.urandom(4).hex()
_temp_numbers = itertools.count()


def _temp_name() -> str:
    """A fresh temp name; a random draw (a system call) per file cost more than the copy."""
    return f"{TEMP_PREFIX}{_TEMP_RUN}{next(_temp_numbers):06x}"


def write_temp(dir_fd: int, source: BinaryIO, mtime_ns: int, durable: bool) -> str:
    """Copy ``source`` into a new temp file in the folder ``dir_fd``, stamped ``mtime_ns``.

    Returns the temp file's name. ``durable`` fsyncs it (a batch syncs all of its temp files
    at once instead). A failure removes the temp file. Plain descriptor calls, no file
    object: for a small file, its set-up cost more than the copy.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        tmp = _temp_name()
        try:
            fd = os.open(tmp, flags, 0o666, dir_fd=dir_fd)
            break
        except FileExistsError:  # left by a process that drew the same random part
            continue
    try:
        try:
            while chunk := source.read(CHUNK_SIZE):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.utime(fd, ns=(mtime_ns, mtime_ns))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    return tmp


@dataclass
class _Item:
    """One job on its way: its folder, its temp file while it has one, and its outcome."""

    job: WriteJob
    dir_fd: int = -1
    name: str = ""
    tmp: str | None = None
    outcome: WriteOutcome | None = None


class _Folders:
    """The folders a batch writes into, each opened once (never through a link), any thread."""

    def __init__(self, location: FolderTarget) -> None:
        self._location = location
        self._fds: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()
        self._stack = contextlib.ExitStack()

    def open(self, folders: tuple[str, ...], path: str) -> int:
        """The descriptor of ``folders`` (made if missing) for writing ``path`` into it."""
        fd = self._fds.get(folders)  # entries are only added: no lock needed to find one
        if fd is not None:
            return fd
        with self._lock:
            fd = self._fds.get(folders)
            if fd is None:
                opened = self._location.folder_for_writing(list(folders), path)
                fd = self._stack.enter_context(opened)
                self._fds[folders] = fd
            return fd

    def close(self) -> None:
        self._stack.close()


def _target_folder(item: _Item, folders: _Folders) -> None:
    """Open (or make) the folder ``item`` goes into; set its descriptor and final name."""
    parts = check_posix_relpath(item.job.path).split("/")
    item.dir_fd = folders.open(tuple(parts[:-1]), item.job.path)
    item.name = parts[-1]


def _stage(item: _Item, folders: _Folders, durable: bool) -> None:
    """Write ``item``'s temp file; a failure of this one file becomes its outcome."""
    try:
        # The source first: a failure to reach the target folder is then the target's (a
        # folder in the way, no descriptor left), and a vanished source makes no folder.
        with item.job.open_source() as source:
            _target_folder(item, folders)
            item.tmp = write_temp(item.dir_fd, source, item.job.mtime_ns, durable)
    except (FileSyncError, OSError) as exc:
        item.outcome = exc
