"""Landing a group of copies in a folder with one durability pass (issue 11).

Making each small file durable on its own costs one blocking ``fsync`` per file, one after the
other, and that was most of an initial sync's time. A batch instead:

1. writes every job's temp file next to its final name, a few at a time on short-lived threads
   (each source is opened there, copied and stamped with its mtime);
2. makes them all durable together: one ``syncfs`` per file system, or, for a handful of files,
   an ``fsync`` of each (which does not wait for what other programs wrote);
3. renames each temp file over its name, re-checking just before that the file there is still
   the version the engine planned to replace: if not, that job fails with FileChanged and the
   user's file stays. The replaced version goes to the trash, per file, as for a single write;
4. makes the renames durable: another ``syncfs``, or an ``fsync`` of each folder renamed into.

Only then are the outcomes returned, so the engine records (and commits) a row only for a copy
that is on disk. A kill at any moment leaves temp files at worst, which the next start removes:
no name ever shows an empty or partial file.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import BinaryIO, Protocol, cast

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


#: Threads writing one batch's temp files (at most two: one from each end of the group).
COPY_THREADS = 2
#: From this many files on, one ``syncfs`` is cheaper than an ``fsync`` per file.
SYNCFS_FROM = 8


def _find_syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs`` (Linux), or None where there is none: then every file is fsynced."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to load
        return None
    found: Callable[[int], int] | None = getattr(libc, "syncfs", None)
    return found


_SYNCFS = _find_syncfs()
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


def write_batch(
    location: FolderTarget, jobs: Sequence[WriteJob], *, parallel_reads: bool
) -> list[WriteOutcome]:
    """Write ``jobs`` into ``location`` as the module describes; one outcome per job."""
    items = [_Item(job) for job in jobs]
    use_syncfs = _SYNCFS is not None and len(items) >= SYNCFS_FROM
    folders = _Folders(location)
    try:
        _stage_all(items, folders, durable=not use_syncfs, parallel=parallel_reads)
        staged = [item for item in items if item.tmp is not None]
        if use_syncfs and staged:
            _fail_all(staged, _sync_filesystems(staged))
        landed = []
        for item in staged:
            if item.outcome is None:
                _land(location, item)
                if item.tmp is None:
                    landed.append(item)
        if landed:
            _fail_all(landed, _sync_renames(landed, use_syncfs))
    finally:
        for item in items:
            if item.tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(item.tmp, dir_fd=item.dir_fd)
        folders.close()
    outcomes = [item.outcome for item in items]
    assert all(outcome is not None for outcome in outcomes)
    return cast(list[WriteOutcome], outcomes)


def _stage_all(items: list[_Item], folders: _Folders, *, durable: bool, parallel: bool) -> None:
    """Write every item's temp file; on two threads when the sources allow it.

    The paths come sorted, so neighbours share a folder, and creating a file locks its folder:
    one thread takes the items from the front and the other from the back, so they seldom
    wait for each other's folder, and whichever is faster takes more.
    """
    if not parallel or len(items) < 2:
        for item in items:
            _stage(item, folders, durable)
        return
    todo = deque(items)

    def take_all(take: Callable[[], _Item]) -> None:
        while todo:
            try:
                item = take()
            except IndexError:  # the other thread took the last one
                return
            _stage(item, folders, durable)

    ends = [todo.popleft, todo.pop][:COPY_THREADS]
    with ThreadPoolExecutor(len(ends), "filesync-copy") as pool:
        running = [pool.submit(take_all, end) for end in ends]
        done, _ = wait(running, return_when=FIRST_EXCEPTION)
        if any(future.exception() is not None for future in done):
            todo.clear()  # a stop: the other thread ends after its current item
        for future in running:
            future.result()


def _stage(item: _Item, folders: _Folders, durable: bool) -> None:
    """Write ``item``'s temp file; a failure of this one file becomes its outcome."""
    path = item.job.path
    try:
        parts = check_posix_relpath(path).split("/")
        item.dir_fd = folders.open(tuple(parts[:-1]), path)
        item.name = parts[-1]
        with item.job.open_source() as source:
            item.tmp = write_temp(item.dir_fd, source, item.job.mtime_ns, durable)
    except (FileSyncError, OSError) as exc:
        item.outcome = exc


def _land(location: FolderTarget, item: _Item) -> None:
    """Rename ``item``'s temp file into place if its name still holds what was planned."""
    assert item.tmp is not None
    try:
        item.outcome = location.replace_temp(
            item.dir_fd, item.name, item.job.path, item.tmp, check=True, expected=item.job.expected
        )
        item.tmp = None
    except (FileSyncError, OSError) as exc:
        item.outcome = exc


def _fail_all(items: list[_Item], error: OSError | None) -> None:
    """The durability pass failed: none of ``items`` may be reported as written."""
    if error is not None:
        for item in items:
            item.outcome = error


def _sync_filesystems(items: list[_Item]) -> OSError | None:
    """``syncfs`` once for each file system the items' folders are on; the error, if any."""
    try:
        for fd in _one_folder_per_device(items):
            with _readable(fd) as readable:
                assert _SYNCFS is not None
                if _SYNCFS(readable) != 0:
                    err = ctypes.get_errno()
                    return OSError(err, os.strerror(err))
    except OSError as exc:
        return exc
    return None


def _sync_renames(items: list[_Item], use_syncfs: bool) -> OSError | None:
    """Make the renames durable: ``syncfs`` again, or an ``fsync`` of each folder."""
    if use_syncfs:
        return _sync_filesystems(items)
    try:
        for fd in {item.dir_fd for item in items}:
            with _readable(fd) as readable:
                os.fsync(readable)
    except OSError as exc:
        return exc
    return None


def _one_folder_per_device(items: list[_Item]) -> list[int]:
    devices: dict[int, int] = {}
    for fd in {item.dir_fd for item in items}:
        devices.setdefault(os.fstat(fd).st_dev, fd)
    return list(devices.values())


@contextlib.contextmanager
def _readable(dir_fd: int) -> Iterator[int]:
    """A descriptor of the folder ``dir_fd`` that ``fsync`` and ``syncfs`` accept (not O_PATH)."""
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)
