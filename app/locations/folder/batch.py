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

A large group goes in parts of :data:`PART_FILES`: while one part's steps 2-4 run on a thread of
their own, the next part's step 1 runs, so the copies do not stop while a pass waits for the
disk; a part's renames become durable with the next part's step 2.

Groups that follow each other may share step 4 with the next group's step 2 instead
(``settle=False``; :mod:`~app.locations.folder.durability` keeps what waits): the ``syncfs``
that makes group N+1's temp files durable makes group N's renames durable too, so a group
costs one pass instead of two. The outcomes of such a group come back before its renames are
durable; the engine records them only once a later pass covered them (the next group's, or
the location's ``settle_writes``), and if that pass fails, the next group raises it and
neither group is recorded.

Steps 1 and 3 have an optional speedup in C (:mod:`app.locations.folder.fastcopy`); the
Python steps that write one temp file, and that the speedup falls back to, are in
:mod:`app.locations.folder.staging`. This module is the protocol: the order of the steps, the
durability passes, and which outcome each job gets.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import NamedTuple, cast

from app.errors import FileSyncError
from app.locations.base import GroupStopped, WriteJob, WriteOutcome
from app.locations.folder.durability import SYNCFS, Unsettled, fsync_folders, syncfs_each
from app.locations.folder.fastcopy import _calls, _fast, _land_new, _stage_fast
from app.locations.folder.staging import FolderTarget, _Folders, _Item, _stage

#: Threads writing one batch's temp files (at most two: one from each end of the group).
COPY_THREADS = 2
#: From this many files on, one ``syncfs`` is cheaper than an ``fsync`` per file.
SYNCFS_FROM = 8
#: The most target folders a part of a group keeps open (one descriptor each, until its
#: renames; two parts are open at once, one written while the other lands): up to seven target
#: locations written at once stay under the usual limit of 1,024 descriptors, however a
#: group's files are spread (four targets with 128 a part, files each in a folder of its own,
#: ran out of them).
FOLDERS_OPEN = 64
#: The most files a part of a group holds (see :func:`write_batch`): a group of 1,024 is written
#: as two parts, the second part's copies overlapping the first part's durability pass.
PART_FILES = 512


def write_batch(
    location: FolderTarget,
    jobs: Sequence[WriteJob],
    *,
    parallel_reads: bool,
    unsettled: Unsettled,
    settle: bool = True,
) -> list[WriteOutcome]:
    """Write ``jobs`` into ``location`` as the module describes; one outcome per job.

    A group is written in parts (:func:`_parts`), each keeping its folders open until its
    renames. While one part's temp files are made durable and renamed (steps 2-4, on a thread
    of their own), the next part's temp files are written (step 1): a durability pass waits
    for the disk, and the copies it waited for used to stop meanwhile. Each part's renames
    become durable with the next part's first pass, as between groups. A stop (or an error that
    is not one file's) while a part is written waits for the part being landed, then ends the
    group: with that part's error if its pass failed, else with :class:`GroupStopped` holding
    the outcomes of the parts that landed, for the engine to record once a pass covered them.
    """
    parts = _parts(jobs)
    use_syncfs = SYNCFS and (len(jobs) >= SYNCFS_FROM or bool(unsettled))
    durable = not use_syncfs  # no syncfs: each temp file is fsynced as it is written
    if len(parts) == 1:
        staged = _stage_part(location, jobs, durable=durable, parallel=parallel_reads)
        return _land_part(location, staged, use_syncfs, unsettled=unsettled, settle=settle)
    outcomes: list[WriteOutcome] = []
    with ThreadPoolExecutor(1, "filesync-land") as lander:
        landing: Future[list[WriteOutcome]] | None = None
        try:
            for number, part in enumerate(parts):
                staged = _stage_part(
                    location, part, durable=not use_syncfs, parallel=parallel_reads
                )
                try:
                    if landing is not None:
                        outcomes += landing.result()
                except BaseException:
                    _remove_temps(staged)
                    raise
                last = number == len(parts) - 1
                landing = lander.submit(
                    _land_part,
                    location,
                    staged,
                    use_syncfs,
                    unsettled=unsettled,
                    settle=settle and last,
                )
        except BaseException as stopped:
            failed = None
            if landing is not None:
                wait([landing])  # its temp files are its own to remove
                failed = landing.exception()
            if isinstance(failed, FileSyncError | OSError):
                # Its pass failed: that must reach the engine, not the stop (the renames that
                # pass was to make durable are forgotten, and must not be recorded).
                if failed is stopped:
                    raise
                raise failed from stopped
            if landing is not None and failed is None:
                outcomes += landing.result()
            if outcomes:  # the parts landed so far are the engine's to record
                raise GroupStopped(outcomes, stopped) from stopped
            raise
        assert landing is not None
        outcomes += landing.result()
    return outcomes


def _parts(jobs: Sequence[WriteJob]) -> list[Sequence[WriteJob]]:
    """``jobs`` cut into parts of at most :data:`PART_FILES` files, and where a part would
    need more than :data:`FOLDERS_OPEN` folders."""
    parts: list[Sequence[WriteJob]] = []
    start, folders = 0, set[str]()
    for n, job in enumerate(jobs):
        folder = job.path.rpartition("/")[0]
        if n - start >= PART_FILES or (folder not in folders and len(folders) >= FOLDERS_OPEN):
            parts.append(jobs[start:n])
            start, folders = n, set[str]()
        folders.add(folder)
    parts.append(jobs[start:])
    return parts


class _Staged(NamedTuple):
    """A part whose temp files are written: its items, and the folders they are in."""

    items: list[_Item]
    folders: _Folders


def _stage_part(
    location: FolderTarget, jobs: Sequence[WriteJob], *, durable: bool, parallel: bool
) -> _Staged:
    """Step 1 for a part: every job's temp file (or its failure); on a stop, none is left."""
    staged = _Staged([_Item(job) for job in jobs], _Folders(location))
    try:
        _stage_all(staged.items, staged.folders, durable=durable, parallel=parallel)
    except BaseException:
        _remove_temps(staged)
        raise
    return staged


def _remove_temps(staged: _Staged) -> None:
    """Remove the temp files still there (not renamed) and close the part's folders."""
    for item in staged.items:
        if item.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(item.tmp, dir_fd=item.dir_fd)
    staged.folders.close()


def _land_part(
    location: FolderTarget,
    staged: _Staged,
    use_syncfs: bool,
    *,
    unsettled: Unsettled,
    settle: bool,
) -> list[WriteOutcome]:
    """Steps 2-4 for a part whose temp files are written; one outcome per item.

    The first durability pass also covers what ``unsettled`` holds from earlier parts and
    groups; if it fails, that error is raised (the earlier ones are not durable, nor is any of
    these). With ``settle`` the renames are durable when this returns; without, they join
    ``unsettled`` (where ``syncfs`` exists; else they are made durable at once).
    """
    items = staged.items
    try:
        written = [item for item in items if item.tmp is not None]
        if unsettled:
            error = unsettled.sync_with(_folders_of(written))
            if error is not None:
                raise error
        elif use_syncfs and written:
            _fail_all(written, syncfs_each(_folders_of(written)))
        landed = _land_new(location, written)
        for item in written:
            if item.outcome is None and item.tmp is not None and _land(location, item):
                landed.append(item)
        if landed and use_syncfs and not settle:
            unsettled.add(_folders_of(landed))
        elif landed and use_syncfs:
            _fail_all(landed, syncfs_each(_folders_of(landed)))
        elif landed:
            _fail_all(landed, fsync_folders(_folders_of(landed)))
    finally:
        _remove_temps(staged)
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


def _fail_all(items: list[_Item], error: OSError | None) -> None:
    """The durability pass failed: none of ``items`` may be reported as written."""
    if error is not None:
        for item in items:
            item.outcome = error


def _folders_of(items: list[_Item]) -> set[int]:
    """The folders (descriptors) ``items`` are written into."""
    return {item.dir_fd for item in items}
