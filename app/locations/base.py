"""The one interface every kind of location implements, and the facts it declares.

A location is a tree of files addressed by relative POSIX paths (``"a/b.txt"``). The engine
only ever talks to this interface, so a folder, a ZIP archive and an FTP server are
interchangeable. What a backend cannot do is *declared* in :class:`Capabilities` (as rclone
does) rather than discovered through exceptions: the engine decides up front whether it can
rename in place, how precisely it may compare modification times, and whether it must poll.

Rules every implementation follows (the contract suite in ``tests/test_contract.py`` checks
them against every kind):

* ``scan`` lists regular files only, never directories, never internal names
  (:func:`is_internal`), and raises :class:`~app.errors.LocationUnavailable` rather than ever
  returning an empty listing for a location it could not read.
* ``write`` is atomic: a reader sees the old content or the new, never a part.
* ``write`` and ``rename`` return the :class:`FileMeta` the location now reports for the file,
  which is what the engine records in its index (this is how a location that cannot set
  modification times avoids ping-pong). The tag may be 0 ("unknown") where learning it would
  cost another round trip; the engine then learns it from the next listing.
* ``delete`` of a missing file is not an error.
* Streams are read and written in chunks; nothing holds a whole file in memory.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from app.errors import FileChanged, FileSyncError, NotSupported
from app.locations.form.fields import ConnectionReport, FormLayout, FormStyle
from app.locations.names import PORTABLE_NAMES, NamePolicy
from app.locations.names import check_relpath as check_relpath  # noqa: PLC0414 - re-export

if TYPE_CHECKING:
    from app.locations.options import LocationOptions
    from app.locations.spec import LocationSpec

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


@dataclass(slots=True)
class WriteJob:
    """One file of :meth:`Location.write_many` (treated as immutable; not ``frozen``, which
    is five times slower to build, for one job per copy; see ``app.engine.plan.Side``).

    ``open_source`` opens the bytes to write (it runs on whatever thread copies them);
    ``expected`` is the version the engine planned to replace (None: no file), as for
    :meth:`Location.guarded_write`. ``source_at``, where the source is a folder on this
    computer, gives its :meth:`Location.local_file` instead (with ``open_source``'s stop check
    and blame), for a target that copies without a stream; ``size`` is the planned size
    (-1: unknown).
    """

    path: str
    open_source: Callable[[], contextlib.AbstractContextManager[BinaryIO]]
    mtime_ns: int
    expected: FileMeta | None
    source_at: Callable[[], contextlib.AbstractContextManager[tuple[int, str]]] | None = None
    size: int = -1
    #: The source folder's root, where ``source_at`` is set: the file is ``path`` beneath it.
    source_root: LocalRoot | None = None
    #: Called once a copy through ``source_root`` read the source whole, as entering
    #: ``source_at`` tells the engine: a failure after it is the target's, not the source's.
    source_read: Callable[[], None] | None = None


#: What one job of :meth:`Location.write_many` came to: the file's meta, or why it failed.
WriteOutcome = FileMeta | FileSyncError | OSError


def is_internal(path: str) -> bool:
    """Return True for names FileSync owns: its meta folder, temp files and the ignore file."""
    if path.startswith(META_DIR) and (len(path) == len(META_DIR) or path[len(META_DIR)] == "/"):
        return True
    if path == IGNORE_FILE:
        return True
    return TEMP_PREFIX in path and path.rpartition("/")[2].startswith(TEMP_PREFIX)


class Location(ABC):
    """A place whose files are kept identical to the other locations' files.

    Subclasses set :attr:`capabilities` and implement the abstract methods. All methods may be
    called from the engine thread while the location's watcher runs in its own thread; an
    implementation guards shared state (a connection, a cached listing) with a lock.
    """

    capabilities: Capabilities

    #: ``folder``, ``zip`` or ``ftp``.
    kind: str = ""
    #: Built with ``LocationOptions(read_only=True)``, ``open``, ``adopt`` and ``scan`` change
    #: nothing (no root mark, no new archive, no temp-file cleanup): what a dry run needs.
    reads_only: bool = False

    #: Seconds between two polls of this location (a polled kind, or a folder whose OS events
    #: cannot be trusted). :func:`app.locations.registry.open_with` sets it from the run's
    #: setting or the kind's default.
    poll_interval: float = 2.0

    @property
    @abstractmethod
    def key(self) -> str:
        """Stable identity for the state index, without any password (``folder:/abs/path``)."""

    @property
    def name(self) -> str:
        """Human-readable name for logs, errors and the UI; never contains a password."""
        return self.key

    @property
    @abstractmethod
    def label(self) -> str:
        """Short word naming this location inside conflict-copy file names (``laptop``)."""

    def other_names(self, path: str) -> frozenset[str]:
        """Other names of the file at ``path`` (hard links), which a write through it changes.

        The watcher of a kind with ``native_events`` reports a change under every name.
        """
        return frozenset()

    def local_paths(self) -> tuple[Path, ...]:
        """The paths on this computer's disk the location's data occupies; none if remote.

        A folder its root, an archive its file. Used to refuse setups in which FileSync would
        sync its own files (see :mod:`app.locations.overlap`); nothing needs to exist yet.
        """
        return ()

    def open(self) -> None:  # noqa: B027 - optional hook, most kinds need no set-up
        """Connect or check the root; raise :class:`LocationUnavailable` if that fails."""

    def close(self) -> None:  # noqa: B027
        """Release connections and file handles. Safe to call twice."""

    def adopt(self, has_history: bool) -> None:  # noqa: B027
        """Claim the root for FileSync once it is open.

        ``has_history`` is true when the index already knows this location. A folder marks its
        root with ``.filesync/`` on first use; if the index knows the location but the mark is
        gone (a drive not mounted, a folder replaced) it raises LocationUnavailable, so its
        missing files are not taken as deletes.
        """

    def housekeeping(self) -> None:  # noqa: B027
        """Periodic upkeep (a folder prunes its trash); called with every periodic rescan."""

    def check_available(self) -> None:  # noqa: B027
        """Raise LocationUnavailable if the root vanished. Cheap: called before every batch."""

    @abstractmethod
    def scan(self, prefix: str = "") -> Listing:
        """Return every file (under ``prefix``, a folder path or ``""``) with its meta."""

    def prune_folders(self, ignored: Callable[[str], bool] | None) -> None:  # noqa: B027
        """From now on :meth:`scan` may skip folders for which ``ignored(folder)`` is true.

        The engine ignores everything below such a folder, so reading it is wasted work. Kinds
        that list a whole tree in one call (an archive, a server's recursive listing) keep
        listing everything; the engine leaves the ignored paths out either way.
        """

    def links(self) -> frozenset[str]:
        """Symbolic links this location skipped (relative paths), as its last scan saw them.

        Nothing at or under such a path is listed, written, renamed or deleted here; the engine
        holds those paths' index rows instead of reading their files as deleted. Kinds that
        cannot hold links return an empty set.
        """
        return frozenset()

    @abstractmethod
    def stat(self, path: str) -> FileMeta | None:
        """Return the file's meta, or None if there is no file at ``path``."""

    def stat_many(self, paths: Iterable[str]) -> dict[str, FileMeta | None]:
        """Return :meth:`stat` for many paths; remote kinds override this to save round trips."""
        return {p: self.stat(p) for p in paths}

    @abstractmethod
    def open_read(self, path: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Open ``path`` for streaming reads; raise :class:`FileVanished` if it is gone."""

    def local_file(self, path: str) -> contextlib.AbstractContextManager[tuple[int, str]]:
        """``path``'s folder as a descriptor and its name, valid within the block (kinds that
        declare ``local_files``). The file itself is not opened: the caller opens it with
        ``O_NOFOLLOW`` and, if that fails, through :meth:`open_read` for the error to raise."""
        raise NotImplementedError(f"{self.name} holds no files on this computer")

    def local_root(self) -> contextlib.AbstractContextManager[int]:
        """The location's root folder as a descriptor, valid within the block (kinds that
        declare ``local_files``); files are opened beneath it, never through a link."""
        raise NotImplementedError(f"{self.name} holds no files on this computer")

    @abstractmethod
    def write(self, path: str, source: BinaryIO, mtime_ns: int) -> FileMeta:
        """Atomically replace ``path`` with the bytes of ``source``, stamped ``mtime_ns``."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Delete ``path`` (and folders it leaves empty). A missing file is not an error."""

    def guarded_write(
        self, path: str, source: BinaryIO, mtime_ns: int, expected: FileMeta | None
    ) -> FileMeta:
        """Like :meth:`write`, but only if ``path`` still holds ``expected`` (None: no file).

        The engine decides from a ``stat`` taken a moment earlier; a user may save the file in
        between. Raising :class:`FileChanged` instead of overwriting keeps that save. Kinds
        that can check closer to the moment of replacing (folders) override this.
        """
        self._expect(path, expected)
        return self.write(path, source, mtime_ns)

    def write_many(
        self, jobs: Sequence[WriteJob], *, parallel_reads: bool = False
    ) -> list[WriteOutcome]:
        """:meth:`guarded_write` for each job; one outcome per job, in order.

        A failure that concerns one file (its source vanished, the target changed since the
        plan, the disk is full) is returned in that job's place and the others still land;
        anything else (a stop) propagates. Kinds that declare ``batched_writes`` override this
        to make the whole group durable at once; ``parallel_reads`` says the sources may be
        read on several threads. This default writes one file after the other.
        """
        outcomes: list[WriteOutcome] = []
        for job in jobs:
            try:
                with job.open_source() as source:
                    meta = self.guarded_write(job.path, source, job.mtime_ns, job.expected)
            except (FileSyncError, OSError) as exc:
                outcomes.append(exc)
            else:
                outcomes.append(meta)
        return outcomes

    def write_many_unsettled(
        self, jobs: Sequence[WriteJob], *, parallel_reads: bool = False
    ) -> list[WriteOutcome]:
        """:meth:`write_many`, whose writes may become durable only later, for a group that
        another group follows: at the next ``write_many*`` call's first durability pass (which
        raises if that pass failed: then neither group may be recorded) or at
        :meth:`settle_writes`. The engine records these outcomes only after one of them.
        This default is :meth:`write_many`, durable when it returns.
        """
        return self.write_many(jobs, parallel_reads=parallel_reads)

    def settle_writes(self) -> None:  # noqa: B027
        """Make durable what :meth:`write_many_unsettled` left pending; raise if that failed."""

    def read_ahead(
        self, wanted: Sequence[tuple[str, FileMeta]]
    ) -> contextlib.AbstractContextManager[None]:
        """Within the block, :meth:`open_read` of these paths (on this thread) may be served
        from bytes fetched together beforehand (kinds that declare ``batched_reads``).

        ``wanted`` pairs each path with the version the engine planned to copy: a file found
        to be another version raises :class:`FileChanged` from its ``open_read``, so what is
        copied is always the version the engine records. Nothing here raises for one file;
        a file that could not be fetched is opened on its own as usual. This default fetches
        nothing.
        """
        return contextlib.nullcontext()

    def guarded_delete(self, path: str, expected: FileMeta | None) -> None:
        """Like :meth:`delete`, but only if ``path`` still holds ``expected``."""
        self._expect(path, expected)
        self.delete(path)

    def _expect(self, path: str, expected: FileMeta | None) -> None:
        if self.stat(path) != expected:
            raise FileChanged("changed while syncing; will retry", location=self.name, path=path)

    def rename(self, src: str, dst: str) -> FileMeta:
        """Move ``src`` to ``dst`` without copying the content (only if ``can_rename``)."""
        raise NotSupported("this location cannot rename files", location=self.name)

    def copy_aside(self, src: str, dst: str, expected: FileMeta) -> FileMeta:
        """Copy the file at ``src`` to the new name ``dst`` (only if ``can_copy_aside``),
        provided ``src`` holds ``expected`` throughout (else :class:`FileChanged`).

        Returns the copy's meta. An existing ``dst`` raises FileExistsError; a location that
        cannot do it raises :class:`NotSupported`, and the caller copies through the stream
        interface instead. A full disk raises its OSError: nothing is left behind.
        """
        raise NotSupported("this location cannot copy files within itself", location=self.name)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes of one engine batch; a ZIP archive rewrites itself once at exit."""
        yield

    def version_store(self) -> VersionStore | None:
        """The versions this location keeps (its trash); None for kinds that keep none.

        Returns a new store each call, safe to use from any thread beside the engine's.
        """
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


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


class VersionStore(ABC):
    """The overwritten and deleted versions one location keeps, and a way to put them back.

    ``files`` is a second instance of the location with its own state (no shared caches with
    the engine's), so restoring a version is a write like a user's: the engine sees it through
    its watcher and syncs it everywhere.
    """

    files: Location

    @abstractmethod
    def trashed(self) -> list[TrashedVersion]:
        """Every version in the trash, in no particular order."""

    @abstractmethod
    def open_trashed(self, entry: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Open a trashed version for reading; :class:`FileVanished` if it was pruned."""


class LocationKind(NamedTuple):
    """Everything the rest of the program knows about one kind of location.

    ``prefixes`` are the short forms it parses (``zip:PATH``), ``url_schemes`` the URL schemes
    (``ftps://…``), ``forms`` examples for error messages; ``parse(text, prefix, rest)``
    builds the spec and ``from_spec`` the :class:`Location`. ``title`` is the kind's name in
    the dialog. ``opens_at_start``: the command line opens such a location before syncing, so
    a mistyped path fails at once (a remote one is retried instead). ``has_password``: its
    password lives in the OS keyring. ``default_port`` is a server's usual port.

    ``form`` lists the dialog's fields and maps their values to a spec and back (see
    :mod:`app.locations.form.fields`). ``test(spec, options)``, when a kind has one, is what
    the dialog's "Test connection" runs (in a worker thread; it may block on the network): it
    returns a :class:`ConnectionReport`, or raises a FileSyncError whose message is shown.
    ``default_poll_interval`` is how many seconds apart a location of this kind is polled
    when the user chose no interval (see :func:`app.locations.registry.open_with`).
    """

    name: str
    title: str
    prefixes: tuple[str, ...]
    forms: tuple[str, ...]
    parse: Callable[[str, str, str], LocationSpec]
    from_spec: Callable[[LocationSpec, LocationOptions], Location]
    form: FormLayout
    url_schemes: tuple[str, ...] = ()
    opens_at_start: bool = False
    has_password: bool = False
    default_port: int = 0
    test: Callable[[LocationSpec, LocationOptions], ConnectionReport] | None = None
    default_poll_interval: float = 2.0

    def server_spec(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        path: str,
        *,
        tls: bool,
        options: tuple[tuple[str, str], ...] = (),
    ) -> LocationSpec:
        """A server kind's spec from separate fields (the dialog and the settings file)."""
        from app.locations.spec import server_spec

        return server_spec(
            host,
            port,
            user,
            password,
            path,
            kind=self.name,
            tls=tls,
            default_port=self.default_port,
            options=options,
        )

    def open_target(self, spec: LocationSpec) -> str:
        """What "Open" shows: a folder, the folder holding a file location, or the URL."""
        if self.form.style is FormStyle.FOLDER:
            return spec.path
        if self.form.style is FormStyle.FILE:
            return str(Path(spec.path).parent)
        return spec.key
