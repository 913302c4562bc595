"""The one interface every kind of location implements, and the store of its old versions.

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

The plain records the interface takes and returns (:class:`FileMeta`, :class:`Capabilities`,
:class:`WriteJob`, ...) live in :mod:`app.locations.records`; every one of them can still be
imported from here.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from app.errors import FileChanged, FileSyncError, NotSupported
from app.locations.form.fields import ConnectionReport, FormLayout, FormStyle
from app.locations.names import check_relpath as check_relpath  # noqa: PLC0414 - re-export
from app.locations.records import (
    CHUNK_SIZE,
    IGNORE_FILE,
    META_DIR,
    TEMP_PREFIX,
    Capabilities,
    FileMeta,
    GroupStopped,
    Listing,
    LocalRoot,
    TrashedVersion,
    WriteJob,
    WriteOutcome,
    is_internal,
)

if TYPE_CHECKING:
    from app.locations.options import LocationOptions
    from app.locations.spec import LocationSpec


#: The records moved to :mod:`app.locations.records` stay importable from here, where most
#: callers import them.
__all__ = [
    "CHUNK_SIZE",
    "IGNORE_FILE",
    "META_DIR",
    "TEMP_PREFIX",
    "Capabilities",
    "FileMeta",
    "GroupStopped",
    "Listing",
    "LocalRoot",
    "Location",
    "LocationKind",
    "TrashedVersion",
    "VersionStore",
    "WriteJob",
    "WriteOutcome",
    "check_relpath",
    "is_internal",
]


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
