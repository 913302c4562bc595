"""Local folders: the reference implementation of the Location interface.

Writes go to a temp file in the target's directory, are fsynced, stamped with the winning mtime
and then ``os.replace``d over the old file, so readers never see a partial file and a kill at
any moment leaves a stray temp file at worst (removed at the next start). Every version the
engine overwrites or deletes is moved to ``.filesync/trash/`` first, so each automatic decision
can be undone by hand, except its own fresh copies that a newer version replaces; the trash
is capped in size and pruned after ``trash_days`` (:mod:`app.locations.folder.trash`).

This module opens, lists and reads the folder; the steps that change it (writes, deletes,
renames, the trash) are :class:`~app.locations.folder.writes.FolderWrites`, its base class.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import stat as stat_mod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from app.errors import FileSyncError, FileVanished, LinkedPath, LocationUnavailable
from app.locations.base import META_DIR, Capabilities, FileMeta, Listing, VersionStore, is_internal
from app.locations.folder.hardlinks import HardLinkNames
from app.locations.folder.mounts import poll_reason
from app.locations.folder.nofollow import LinkFreeTree, is_link_at, lstat_at, open_root
from app.locations.folder.scan import TreeScan
from app.locations.folder.scan import file_meta as _meta
from app.locations.folder.trash import DEFAULT_TRASH_MAX_BYTES, TrashPolicy
from app.locations.folder.versions import FolderVersions
from app.locations.folder.writes import TRASH_DIR, FolderWrites
from app.locations.names import POSIX_NAMES, safe_label
from app.locations.spec import poll_option

if TYPE_CHECKING:
    from app.locations.folder.durability import Unsettled
    from app.locations.options import LocationOptions
    from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)

#: How a source is opened: never through a link, and without blocking should a fifo have
#: taken the file's place since it was listed (the read then fails as not a regular file).
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class FolderLocation(FolderWrites):
    """A local folder, watched with OS events (inotify on Linux)."""

    kind = "folder"
    reads_only = True
    capabilities = Capabilities(
        mtime_precision_ns=1,
        can_set_mtime=True,
        can_rename=True,
        native_events=True,
        names=POSIX_NAMES,
        batched_writes=True,
        large_groups=True,
        parallel_reads=True,
        local_files=True,
        can_copy_aside=True,
    )

    def __init__(
        self,
        root: Path,
        trash_days: float = 30.0,
        trash_max_bytes: int = DEFAULT_TRASH_MAX_BYTES,
        *,
        read_only: bool = False,
        poll: bool = False,
    ) -> None:
        self.root = Path(root)
        self._key = f"folder:{self.root}"  # asked for every path recorded: made once
        #: ``?poll=`` was given: poll as well as watch, whatever the file system.
        self.forced_poll = poll
        self.trash_days = trash_days
        self._trash = TrashPolicy(self.root / TRASH_DIR, trash_max_bytes)
        self._tree = LinkFreeTree(self.root, self.name)
        self._read_only = read_only
        self._unmarked_ok = False  # read-only, first use: no mark yet, none made
        self._clean_temps = not read_only
        self._hard_links = HardLinkNames()
        self._prune: Callable[[str], bool] | None = None
        #: Renames no durability pass covered yet; made (and the write modules, with
        #: ``ctypes``, loaded) by the first group written: a restart that copies nothing
        #: never loads them.
        self._unsettled: Unsettled | None = None

    @classmethod
    def from_spec(cls, spec: LocationSpec, options: LocationOptions) -> FolderLocation:
        """Build from a parsed ``folder:`` spec."""
        return cls(
            Path(spec.path),
            trash_days=options.trash_days,
            trash_max_bytes=int(options.trash_max_mb * (1 << 20)),
            read_only=options.read_only,
            poll=poll_option(spec) is not None,
        )

    @property
    def key(self) -> str:
        return self._key

    @property
    def label(self) -> str:
        return safe_label(self.root.name, self.kind)

    def local_paths(self) -> tuple[Path, ...]:
        """The folder's root: everything below it is synced."""
        return (self.root,)

    @property
    def marker(self) -> Path:
        """The ``.filesync`` folder that marks this root as FileSync's."""
        return self.root / META_DIR

    def open(self) -> None:
        """Check the folder exists and is a folder."""
        if not self.root.is_dir():
            what = "is not a folder" if self.root.exists() else "does not exist"
            raise LocationUnavailable(f"{what}: create it or correct the path", location=self.name)
        self._declare_polling(poll_reason(self.root, self.forced_poll))

    def _declare_polling(self, reason: str | None) -> None:
        """Declare ``poll_as_well`` when OS events cannot be trusted alone (see ``mounts``)."""
        if (reason is not None) == self.capabilities.poll_as_well:
            return
        self.capabilities = FolderLocation.capabilities._replace(poll_as_well=reason is not None)
        if reason is not None:
            log.info("%s: polled every %g s as well as watched: %s", self.name,
                     self.poll_interval, reason)  # fmt: skip

    def adopt(self, has_history: bool) -> None:
        """Create the root mark on first use; refuse a known root whose mark is gone."""
        if self.marker.is_dir():
            if not self._read_only:
                self.prune_trash()
            return
        if has_history:
            raise LocationUnavailable(
                f"the {META_DIR} folder in it is gone (drive unmounted or folder replaced?); "
                f"its files are not deleted elsewhere. If this is the right folder, create an "
                f"empty {META_DIR} folder in it to resume",
                location=self.name,
            )
        if self._read_only:
            self._unmarked_ok = True
            return
        self.marker.mkdir(exist_ok=True)

    def check_available(self) -> None:
        """The root mark is one ``stat``: if it is gone, so is (our view of) the folder."""
        if not self.marker.is_dir() and not self._unmarked_ok:
            raise LocationUnavailable(
                f"the folder or its {META_DIR} mark vanished; holding its deletes",
                location=self.name,
            )

    def links(self) -> frozenset[str]:
        """Links met by the last scan, and by stats and writes since."""
        return self._tree.links()

    def prune_folders(self, ignored: Callable[[str], bool] | None) -> None:
        """Skip folders the engine ignores whole (``node_modules/``) in later scans."""
        self._prune = ignored

    def other_names(self, path: str) -> frozenset[str]:
        """The other names of the file at ``path`` if it has hard links (see ``hardlinks``)."""
        return self._hard_links.others(path)

    def scan(self, prefix: str = "") -> Listing:
        """Walk the folder (or ``prefix`` below it) without following symlinks."""
        self.check_available()
        found = TreeScan(self._tree, prefix, clean_temps=self._clean_temps, prune=self._prune).run()
        self._tree.replace_links(prefix, found.links)
        self._hard_links.replace(prefix, found.hard_links)
        if not prefix:
            self._clean_temps = False
        return found.files

    def stat(self, path: str) -> FileMeta | None:
        """``lstat`` the file; folders, links, names under a link and missing names are None."""
        if is_internal(path):
            return None
        try:
            with self._tree.at(path) as (fd, name):
                st = lstat_at(fd, name)
        except (LinkedPath, FileNotFoundError, NotADirectoryError):
            return None
        self._hard_links.saw(path, st)
        if st is not None and stat_mod.S_ISLNK(st.st_mode):
            self._tree.forget_links(path, including_path=False)
            self._tree.linked(path, path)
            return None
        self._tree.forget_links(path, including_path=True)
        if st is None or not stat_mod.S_ISREG(st.st_mode):
            return None
        return _meta(st)

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        """Open for reading; a link at the name or on the way is refused, never followed."""
        try:
            with self._tree.read_at(path) as (dir_fd, name):
                try:
                    fd = os.open(name, _READ, dir_fd=dir_fd)
                except OSError:
                    if is_link_at(dir_fd, name):
                        raise self._tree.linked(path, path) from None
                    raise
                if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
                    os.close(fd)
                    raise FileSyncError(
                        "cannot read: no longer a regular file", location=self.name, path=path
                    )
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise FileVanished("file vanished", location=self.name, path=path) from None
        except OSError as exc:
            raise FileSyncError(
                f"cannot read: {exc.strerror}", location=self.name, path=path
            ) from None
        # An explicit buffer size spares the terminal check (an ioctl) of the default one.
        with os.fdopen(fd, "rb", buffering=io.DEFAULT_BUFFER_SIZE) as f:
            yield f

    @contextlib.contextmanager
    def local_file(self, path: str) -> Iterator[tuple[int, str]]:
        """``path``'s folder (a kept one in a batch, reached without links) and its name."""
        try:
            with self._tree.read_at(path) as at:
                yield at
        except (FileNotFoundError, NotADirectoryError):
            raise FileVanished("file vanished", location=self.name, path=path) from None

    @contextlib.contextmanager
    def local_root(self) -> Iterator[int]:
        """The root folder (following a link there is fine: the user chose it)."""
        try:
            fd = open_root(self.root)
        except (FileNotFoundError, NotADirectoryError):
            raise LocationUnavailable("the folder vanished", location=self.name) from None
        try:
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """While the engine's batch lasts, reads keep the folders they open (``read_at``)."""
        with self._tree.keeping_folders():
            yield

    def version_store(self) -> VersionStore:
        """This folder's trash, with a second instance of the folder to restore through.

        That instance shares no state with this one and never removes temp files (they may be
        this one's copies in progress).
        """
        files = FolderLocation(self.root, self.trash_days, self._trash.max_bytes)
        files._clean_temps = False
        return FolderVersions(files, self.root / TRASH_DIR, TRASH_DIR)

    def housekeeping(self) -> None:
        """Prune the trash, so a folder synced for months does not keep every old version."""
        self.prune_trash()

    def prune_trash(self) -> None:
        """Delete trash folders older than ``trash_days``."""
        self._trash.prune(self.trash_days)
