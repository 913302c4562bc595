"""The optional C speedup of a folder's batch (``_copy.c``): small copies and new files' renames.

Where ``pip install`` found a compiler, a small file whose source is a folder on this computer
(``source_at``) is copied with plain system calls, many files a call, on two threads of its own,
with the interpreter lock released; a new file is renamed into place with ``RENAME_NOREPLACE``,
which is its re-check (the rename fails if a file appeared there meanwhile). Any file the C code
cannot do is done again by the Python steps (:mod:`app.locations.folder.staging`), which raise
the error a user sees. ``FILESYNC_PURE_PYTHON=1`` turns it off; :data:`SPEEDUP` says whether it
runs. Kept apart from :mod:`app.locations.folder.batch`, which only asks it what it can do.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from typing import cast

from app.errors import FileSyncError
from app.locations.base import FileMeta, WriteJob
from app.locations.folder.scan import meta_of
from app.locations.folder.staging import (
    FolderTarget,
    _Folders,
    _Item,
    _stage,
    _target_folder,
    _temp_name,
)

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
