"""The plain data a location reports and takes: file metadata, declared capabilities, jobs.

Small records shared by every kind of location, the engine, the watchers and the dashboard,
apart from the :class:`~app.locations.base.Location` interface that uses them
(:mod:`app.locations.base`, which re-exports every name here): most callers need only the
records, and each kind's modules can name a record without the interface's imports. Also the
names FileSync reserves in every location (:func:`is_internal`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

from app.errors import FileSyncError
from app.locations.names import PORTABLE_NAMES, NamePolicy

#: Folder at each root that holds FileSync's own data (trash, root marker). Never synced.
META_DIR = ".filesync"
#: Prefix of every temporary file FileSync writes. Watchers and scans ignore such names.
TEMP_PREFIX = ".filesync-tmp-"
#: Per-root ignore file (gitignore syntax). Read by the engine, never synced.
IGNORE_FILE = ".filesyncignore"
#: Copy buffer size for streaming between locations.
CHUNK_SIZE = 1024 * 1024


class FileMeta(NamedTuple):
    """What a location reports about one file: size in bytes, mtime in ns since the epoch (UTC).

    ``tag`` is any cheap value that changes when the content may have changed although size
    and mtime did not (coarse clocks, tools that restore mtimes): a ZIP member's CRC-32, a
    file's inode and ctime; 0 where a kind has none. It only says whether a location's own
    file changed since the index saw it; it is never compared across locations.

    A named tuple rather than a dataclass: there is one per file per location in every listing
    and index mirror, and a tuple is built and compared several times faster (a restart of
    100,000 files builds and compares hundreds of thousands of them).
    """

    size: int
    mtime_ns: int
    tag: int = 0

    def same_version(self, other: FileMeta | None) -> bool:
        """Size and mtime equal (the tag ignored): e.g. the same file before and after a rename."""
        return other is not None and (self.size, self.mtime_ns) == (other.size, other.mtime_ns)


class Capabilities(NamedTuple):
    """What a kind of location can do, declared once.

    ``mtime_precision_ns`` is the granularity of the times it reports: two times closer than the
    coarser precision of two locations are the same time. ``can_set_mtime`` is false where a
    written file gets the server's clock instead of the time we asked for; such times are never
    compared across locations. ``names`` says which file names the kind can hold; the engine
    leaves the location out of any other path (see :mod:`app.locations.names`).
    ``checks_on_write``: the location itself refuses a guarded write whose file changed (an
    S3 server honouring ``If-Match``), instead of a check made just before the write.

    ``native_events``: the location is a folder tree on this computer, at its first
    :meth:`Location.local_paths`, whose changes the OS reports (inotify and the like); the
    watch layer then watches it instead of polling its ``scan``. ``poll_as_well``: the OS
    reports only some changes (a network or FUSE mount, where another machine's changes raise
    no event here), so the location is polled every ``poll_interval`` as well as watched.
    """

    mtime_precision_ns: int
    can_set_mtime: bool
    can_rename: bool
    native_events: bool
    names: NamePolicy = PORTABLE_NAMES
    checks_on_write: bool = False
    #: :meth:`Location.write_many` lands a group of writes with one durability pass, so the
    #: engine hands such a location its copies in groups instead of one at a time.
    batched_writes: bool = False
    #: Such groups may be bigger while the engine waits for every answer (an initial sync):
    #: each group costs a fixed price (a folder's ``syncfs``), and its size widens no check
    #: window (an S3 group is checked by one listing before its uploads, so it stays small).
    large_groups: bool = False
    #: :meth:`Location.open_read` may run on several threads at once at no cost (local files),
    #: so a group of copies from here may be read in parallel.
    parallel_reads: bool = False
    #: :meth:`Location.read_ahead` fetches a group's small files together (a server's round
    #: trips shared), so the engine announces a group's reads from here before copying it.
    batched_reads: bool = False
    #: :meth:`Location.local_file` gives a file's folder on this computer as a descriptor, so a
    #: folder can copy it with plain system calls (no stream; see ``WriteJob.source_at``).
    local_files: bool = False
    poll_as_well: bool = False
    #: :meth:`Location.copy_aside` copies a file within the location (a folder: a clone or an
    #: in-kernel copy; S3: the server's ``CopyObject``), so a conflict's losing version is
    #: kept under its conflict-copy name without its bytes travelling through FileSync.
    can_copy_aside: bool = False


Listing = dict[str, FileMeta]


class LocalRoot(NamedTuple):
    """A source folder on this computer as a whole, shared by the jobs copying from it.

    A target that copies with plain system calls opens each file beneath the root in one call
    that refuses every link on the way (``openat2``), instead of reaching the file's folder
    (and closing it again) for every file, which cost more than the copy of a small file.
    """

    #: The root folder's descriptor, valid within the block (:meth:`Location.local_root`).
    open: Callable[[], contextlib.AbstractContextManager[int]]
    #: Raises the engine's stop once it was asked to stop (checked once per root opened).
    check_stop: Callable[[], None]


class WriteJob:
    """One file of :meth:`Location.write_many` (treated as immutable, not made so: one is built
    per copy; a plain slotted class for the reason ``app.engine.plan.Side`` is one).

    ``open_source`` opens the bytes to write (it runs on whatever thread copies them);
    ``expected`` is the version the engine planned to replace (None: no file), as for
    :meth:`Location.guarded_write`. ``source_at``, where the source is a folder on this
    computer, gives its :meth:`Location.local_file` instead (with ``open_source``'s stop check
    and blame), for a target that copies without a stream; ``size`` is the planned size
    (-1: unknown).
    """

    __slots__ = (
        "expected",
        "mtime_ns",
        "open_source",
        "path",
        "size",
        "source_at",
        "source_read",
        "source_root",
    )

    path: str
    open_source: Callable[[], contextlib.AbstractContextManager[BinaryIO]]
    mtime_ns: int
    expected: FileMeta | None
    source_at: Callable[[], contextlib.AbstractContextManager[tuple[int, str]]] | None
    size: int
    #: The source folder's root, where ``source_at`` is set: the file is ``path`` beneath it.
    source_root: LocalRoot | None
    #: Called once a copy through ``source_root`` read the source whole, as entering
    #: ``source_at`` tells the engine: a failure after it is the target's, not the source's.
    source_read: Callable[[], None] | None

    def __init__(  # noqa: PLR0917 - its fields in order, as callers pass them
        self,
        path: str,
        open_source: Callable[[], contextlib.AbstractContextManager[BinaryIO]],
        mtime_ns: int,
        expected: FileMeta | None,
        source_at: Callable[[], contextlib.AbstractContextManager[tuple[int, str]]] | None = None,
        size: int = -1,
        source_root: LocalRoot | None = None,
        source_read: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self.open_source = open_source
        self.mtime_ns = mtime_ns
        self.expected = expected
        self.source_at = source_at
        self.size = size
        self.source_root = source_root
        self.source_read = source_read


#: What one job of :meth:`Location.write_many` came to: the file's meta, or why it failed.
WriteOutcome = FileMeta | FileSyncError | OSError


class GroupStopped(Exception):
    """A stop (or any error that is not one file's) ended a :meth:`Location.write_many` group
    after some of its jobs were written in place.

    ``outcomes`` are the outcomes of the group's first ``len(outcomes)`` jobs, ``stop`` what
    ended it. Their renames may still wait for a durability pass, as an unsettled group's do
    (:meth:`Location.settle_writes`), so the engine records them once one covered them.
    """

    def __init__(self, outcomes: list[WriteOutcome], stop: BaseException) -> None:
        super().__init__(str(stop))
        self.outcomes = outcomes
        self.stop = stop


def is_internal(path: str) -> bool:
    """Return True for names FileSync owns: its meta folder, temp files and the ignore file."""
    if path.startswith(META_DIR) and (len(path) == len(META_DIR) or path[len(META_DIR)] == "/"):
        return True
    if path == IGNORE_FILE:
        return True
    return TEMP_PREFIX in path and path.rpartition("/")[2].startswith(TEMP_PREFIX)


class TrashedVersion(NamedTuple):
    """One version a location keeps in its trash: what it was and why it was put there.

    ``entry`` names it inside the trash (the store's own address for it), ``path`` is where it
    lived, ``reason`` is ``deleted`` or ``overwritten``; times are ns since the epoch (UTC).
    """

    entry: str
    path: str
    size: int
    mtime_ns: int
    trashed_at_ns: int
    reason: str
