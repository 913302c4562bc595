"""Landing a group of copies in a folder with one durability pass (issue 11).

Making each small file durable on its own costs one blocking ``fsync`` per file, one after the
other, and that was most of an initial sync's time. A batch instead:

1. writes every job's temp file next to its final name, on two threads (each source is opened
   there, copied and stamped with its mtime);
2. makes them all durable together: one ``syncfs`` per file system, or, for a handful of files,
   an ``fsync`` of each (which does not wait for what other programs wrote);
3. renames each temp file over its name, re-checking just before that the file there is still
   the version the engine planned to replace: if not, that job fails with FileChanged and the
   user's file stays. The replaced version goes to the trash, per file, as for a single write;
4. makes the renames durable: another ``syncfs``, or an ``fsync`` of each folder renamed into.

Only then are the outcomes returned, so the engine records (and commits) a row only for a copy
that is on disk. A kill at any moment leaves temp files at worst, which the next start removes:
no name ever shows an empty or partial file.

Groups that follow each other may share step 4 with the next group's step 2 instead
(``settle=False``; :mod:`~app.locations.folder.durability` keeps what waits): the ``syncfs``
that makes group N+1's temp files durable makes group N's renames durable too, so a group
costs one pass instead of two. The outcomes of such a group come back before its renames are
durable; the engine records them only once a later pass covered them (the next group's, or
the location's ``settle_writes``), and if that pass fails, the next group raises it and
neither group is recorded.

Steps 1 and 3 have an optional speedup in C, ``_copy.c`` (built by ``pip install``, where a
compiler is found): a small file whose source is a folder on this computer (``source_at``) is
copied with plain system calls, many files a call, on two threads of its own, with the
interpreter lock released;
a new file is renamed into place with ``RENAME_NOREPLACE``, which is its re-check (the rename
fails if a file appeared there meanwhile). Any file the C code cannot do is done again by the
Python steps, which raise the error a user sees. ``FILESYNC_PURE_PYTHON=1`` turns it off;
:data:`SPEEDUP` says whether it runs.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import BinaryIO, Protocol, cast

from app.errors import FileSyncError
from app.locations.base import CHUNK_SIZE, TEMP_PREFIX, FileMeta, WriteJob, WriteOutcome
from app.locations.folder.durability import SYNCFS, Unsettled, fsync_folders, syncfs_each
from app.locations.folder.scan import meta_of
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


#: Threads writing one batch's temp files (at most two: one from each end of the group).
COPY_THREADS = 2
#: From this many files on, one ``syncfs`` is cheaper than an ``fsync`` per file.
SYNCFS_FROM = 8
#: Files up to this size (as planned) are copied by the C speedup, which also gives up on a
#: source that grew past it; a bigger one streams in Python, which checks for a stop between
#: its chunks.
FAST_COPY_MAX = 1 << 20
#: The most bytes (as planned) the C speedup copies in one call, with the interpreter lock
#: released once for all of them: a stop is seen between two calls, so it waits for at most
#: this much copying...
FAST_CALL_BYTES = 16 << 20
#: ... and at most this many files: each costs a few system calls (round trips, on a network
#: folder), so a stop waits for at most this many files' copies, not a whole group's...
FAST_CALL_FILES = 128
#: ... and this many where the system has no ``openat2``: then each file of a call holds its
#: source folder's descriptor until the call ends (a call of 1,024 files ran out of them).
FAST_CALL_FILES_HELD = 16
#: The most target folders a group keeps open at once (one descriptor each, until its
#: renames): two folders written at once stay well under the usual limit of 1,024
#: descriptors, however the group's files are spread (a group of 1,024 files in as many
#: folders ran out of them).
FOLDERS_OPEN = 256


#: ``_copy.stage`` and ``_copy.land_new`` (the C speedup), or None where it did not build or
#: is turned off.
_stage_c: Callable[[list[tuple[int, str, int, str, int]], bool, bool, int], list[int]] | None
_land_c: Callable[[list[tuple[int, str, str]]], list[tuple[int, int, int, int] | int]] | None
try:
    if os.environ.get("FILESYNC_PURE_PYTHON") == "1":
        raise ImportError("FILESYNC_PURE_PYTHON=1")
    from app.locations.folder._copy import land_new, stage
except ImportError:  # not built (no compiler at install): the Python steps only
    _stage_c = _land_c = None
else:
    _stage_c, _land_c = stage, land_new
#: True when small copies and new files' renames run in C (``--self-check`` reports it).
SPEEDUP = _stage_c is not None
#: The C speedup opens a source beneath its root folder (``openat2``) until the system says it
#: has no such call; then it reaches the source's folder first, as before.
_beneath = True


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
    location: FolderTarget,
    jobs: Sequence[WriteJob],
    *,
    parallel_reads: bool,
    unsettled: Unsettled,
    settle: bool = True,
) -> list[WriteOutcome]:
    """Write ``jobs`` into ``location`` as the module describes; one outcome per job.

    A group spread over more than :data:`FOLDERS_OPEN` folders is written as consecutive
    parts, each keeping its folders open until its renames: the parts' passes are shared as
    between groups (each part's renames become durable with the next part's first pass).
    """
    parts = _by_folders(jobs)
    outcomes: list[WriteOutcome] = []
    for number, part in enumerate(parts):
        last = number == len(parts) - 1
        outcomes += _write_part(
            location,
            part,
            parallel_reads=parallel_reads,
            unsettled=unsettled,
            settle=settle if last else False,
        )
    return outcomes


def _by_folders(jobs: Sequence[WriteJob]) -> list[Sequence[WriteJob]]:
    """``jobs`` cut where a part would need more than :data:`FOLDERS_OPEN` folders."""
    parts: list[Sequence[WriteJob]] = []
    start, folders = 0, set[str]()
    for n, job in enumerate(jobs):
        folder = job.path.rpartition("/")[0]
        if folder not in folders and len(folders) >= FOLDERS_OPEN:
            parts.append(jobs[start:n])
            start, folders = n, set[str]()
        folders.add(folder)
    parts.append(jobs[start:])
    return parts


def _write_part(
    location: FolderTarget,
    jobs: Sequence[WriteJob],
    *,
    parallel_reads: bool,
    unsettled: Unsettled,
    settle: bool,
) -> list[WriteOutcome]:
    """:func:`write_batch` for jobs in at most :data:`FOLDERS_OPEN` folders.

    The first durability pass also covers what ``unsettled`` holds from earlier groups; if it
    fails, that error is raised (the earlier groups are not durable, nor is any of these).
    With ``settle`` the renames are durable when this returns; without, they join
    ``unsettled`` (where ``syncfs`` exists; else they are made durable at once).
    """
    items = [_Item(job) for job in jobs]
    use_syncfs = SYNCFS and (len(items) >= SYNCFS_FROM or bool(unsettled))
    folders = _Folders(location)
    try:
        _stage_all(items, folders, durable=not use_syncfs, parallel=parallel_reads)
        staged = [item for item in items if item.tmp is not None]
        if unsettled:
            error = unsettled.sync_with(_folders_of(staged))
            if error is not None:
                raise error
        elif use_syncfs and staged:
            _fail_all(staged, syncfs_each(_folders_of(staged)))
        landed = _land_new(location, staged)
        for item in staged:
            if item.outcome is None and item.tmp is not None and _land(location, item):
                landed.append(item)
        if landed and use_syncfs and not settle:
            unsettled.add(_folders_of(landed))
        elif landed and use_syncfs:
            _fail_all(landed, syncfs_each(_folders_of(landed)))
        elif landed:
            _fail_all(landed, fsync_folders(_folders_of(landed)))
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
    """Write every item's temp file, on two threads when the sources allow it.

    The small files the C speedup can copy go first, in calls of up to
    :data:`FAST_CALL_BYTES` that two threads of its own share with the interpreter lock
    released: the copy threads used to take runs of 16 files each and win the lock back after
    every run, and while the engine thread planned, each of those waits could last its whole
    switch interval. The rest are copied in Python, as :func:`_stage_each` says.
    """
    fast: list[_Item] = []
    slow: list[_Item] = []
    for item in items:
        (fast if _fast(item.job) else slow).append(item)
    threads = COPY_THREADS if parallel else 1
    for call in _calls(fast):
        _stage_fast(call, folders, durable, threads)
    _stage_each(slow, folders, durable=durable, parallel=parallel)


def _stage_each(items: list[_Item], folders: _Folders, *, durable: bool, parallel: bool) -> None:
    """Write each item's temp file in Python; on two threads when the sources allow it.

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


def _fast(job: WriteJob) -> bool:
    """True when the C speedup may copy ``job``: a small file in a folder on this computer."""
    return (
        _stage_c is not None
        and job.source_at is not None
        and 0 <= job.size <= FAST_COPY_MAX
        and -(1 << 63) <= job.mtime_ns < 1 << 63
    )


def _calls(items: list[_Item]) -> list[list[_Item]]:
    """``items`` cut into the C speedup's calls (see :data:`FAST_CALL_BYTES`)."""
    most = FAST_CALL_FILES if _beneath else FAST_CALL_FILES_HELD
    calls: list[list[_Item]] = []
    size = 0
    for item in items:
        if not calls or len(calls[-1]) >= most or size + item.job.size > FAST_CALL_BYTES:
            calls.append([])
            size = 0
        calls[-1].append(item)
        size += item.job.size
    return calls


def _stage_fast(run: list[_Item], folders: _Folders, durable: bool, threads: int) -> None:
    """Stage ``run`` in C, and in Python every file C could not do."""
    assert _stage_c is not None
    global _beneath  # learnt once: this system has no openat2
    beneath = _beneath and all(item.job.source_root is not None for item in run)
    tried: list[tuple[_Item, str]] = []
    calls: list[tuple[int, str, int, str, int]] = []
    with contextlib.ExitStack() as sources:
        roots: dict[int, int] = {}
        for item in run:
            try:
                _target_folder(item, folders)
                if beneath:
                    src_fd, src_name = _root_of(item.job, roots, sources), item.job.path
                else:
                    assert item.job.source_at is not None
                    src_fd, src_name = sources.enter_context(item.job.source_at())
            except (FileSyncError, OSError):
                _stage(item, folders, durable)  # says what went wrong, as without the speedup
                continue
            tmp = _temp_name()
            calls.append((src_fd, src_name, item.dir_fd, tmp, item.job.mtime_ns))
            tried.append((item, tmp))
        errors = _stage_c(calls, durable, beneath, threads)
    if beneath and errno.ENOSYS in errors:
        _beneath = False
    again: list[_Item] = []
    for (item, tmp), error in zip(tried, errors, strict=True):
        if error == 0:  # every temp file written is the item's before anything may raise
            item.tmp = tmp
            if beneath and item.job.source_read is not None:
                item.job.source_read()  # as entering source_at would have said
        else:  # its temp file is gone: the Python steps try again and raise what a user sees
            again.append(item)
    for item in again:
        _stage(item, folders, durable)


def _root_of(job: WriteJob, roots: dict[int, int], sources: contextlib.ExitStack) -> int:
    """The descriptor of ``job``'s source root, opened once per run (and the stop checked)."""
    root = job.source_root
    assert root is not None
    fd = roots.get(id(root))
    if fd is None:
        root.check_stop()
        fd = roots[id(root)] = sources.enter_context(root.open())
    return fd


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


def _land(location: FolderTarget, item: _Item) -> bool:
    """Rename ``item``'s temp file into place if its name still holds what was planned;
    True when it did."""
    assert item.tmp is not None
    try:
        item.outcome = location.replace_temp(
            item.dir_fd, item.name, item.job.path, item.tmp, check=True, expected=item.job.expected
        )
    except (FileSyncError, OSError) as exc:
        item.outcome = exc
        return False
    item.tmp = None
    return True


def _land_new(location: FolderTarget, staged: list[_Item]) -> list[_Item]:
    """Rename in C the temp files of new files (nothing planned to be there); the landed ones.

    ``RENAME_NOREPLACE`` refuses if a file appeared at the name meanwhile: the re-check and the
    rename are one step. Those, and any file the rename failed for, stay for :func:`_land`.
    """
    if _land_c is None:
        return []
    new = [i for i in staged if i.outcome is None and i.tmp is not None and i.job.expected is None]
    if not new:
        return []
    calls = [(i.dir_fd, cast(str, i.tmp), i.name) for i in new]
    landed = []
    wrote: list[tuple[str, FileMeta]] = []
    for item, outcome in zip(new, _land_c(calls), strict=True):
        if isinstance(outcome, int) and outcome > 0:
            continue  # not renamed
        item.tmp = None
        if isinstance(outcome, int):  # renamed, but its lstat failed (not for a delete)
            item.outcome = OSError(-outcome, os.strerror(-outcome))
        else:  # the stat of the file renamed, even if a save replaced it since (see _copy.c)
            item.outcome = meta_of(*outcome)
            wrote.append((item.job.path, item.outcome))
        landed.append(item)
    location.wrote_group(wrote)
    return landed


def _fail_all(items: list[_Item], error: OSError | None) -> None:
    """The durability pass failed: none of ``items`` may be reported as written."""
    if error is not None:
        for item in items:
            item.outcome = error


def _folders_of(items: list[_Item]) -> set[int]:
    """The folders (descriptors) ``items`` are written into."""
    return {item.dir_fd for item in items}
