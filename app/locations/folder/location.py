"""Local folders: the reference implementation of the Location interface.

Writes go to a temp file in the target's directory, are fsynced, stamped with the winning mtime
and then ``os.replace``d over the old file, so readers never see a partial file and a kill at
any moment leaves a stray temp file at worst (removed at the next start). Every version the
engine overwrites or deletes is moved to ``.filesync/trash/`` first, so each automatic decision
can be undone by hand, except its own fresh copies that a newer version replaces; the trash
is capped in size and pruned after ``trash_days`` (:mod:`app.locations.folder.trash`).
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import stat as stat_mod
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from app.errors import (
    FileChanged,
    FileSyncError,
    FileVanished,
    LinkedPath,
    LocationUnavailable,
    NotSupported,
)
from app.locations.base import (
    META_DIR,
    Capabilities,
    FileMeta,
    Listing,
    Location,
    VersionStore,
    WriteJob,
    WriteOutcome,
    is_internal,
)
from app.locations.folder.hardlinks import HardLinkNames
from app.locations.folder.keepcopy import NO_LINKS, NotThatFile, copy_checked
from app.locations.folder.mounts import poll_reason
from app.locations.folder.nofollow import LinkFreeTree, copy_at, is_link_at, lstat_at, open_root
from app.locations.folder.scan import TreeScan, renamed_stat
from app.locations.folder.scan import file_meta as _meta
from app.locations.folder.trash import (
    DEFAULT_TRASH_MAX_BYTES,
    DELETED,
    OVERWRITTEN,
    STAMP_FORMAT,
    TrashPolicy,
    note_trashed,
)
from app.locations.folder.versions import FolderVersions
from app.locations.names import POSIX_NAMES, check_posix_relpath, safe_label
from app.locations.spec import poll_option

if TYPE_CHECKING:
    from app.locations.folder.durability import Unsettled
    from app.locations.options import LocationOptions
    from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)

TRASH_DIR = f"{META_DIR}/trash"
#: How a source is opened: never through a link, and without blocking should a fifo have
#: taken the file's place since it was listed (the read then fails as not a regular file).
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class FolderLocation(Location):
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

    def write(self, path: str, source: BinaryIO, mtime_ns: int) -> FileMeta:
        """Temp file, fsync, set mtime, keep the old version in the trash, replace."""
        return self._write(path, source, mtime_ns, check=False, expected=None)

    def guarded_write(
        self, path: str, source: BinaryIO, mtime_ns: int, expected: FileMeta | None
    ) -> FileMeta:
        """Write, checking ``expected`` after the (possibly long) copy, just before replacing."""
        return self._write(path, source, mtime_ns, check=True, expected=expected)

    def _write(
        self, path: str, source: BinaryIO, mtime_ns: int, check: bool, expected: FileMeta | None
    ) -> FileMeta:
        from app.locations.folder.staging import write_temp

        with self._parent_for_writing(path) as (dir_fd, name):
            tmp = write_temp(dir_fd, source, mtime_ns, durable=True)
            try:
                return self.replace_temp(dir_fd, name, path, tmp, check=check, expected=expected)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)
                raise

    def write_many(
        self, jobs: Sequence[WriteJob], *, parallel_reads: bool = False
    ) -> list[WriteOutcome]:
        """Land the group durably (see :mod:`app.locations.folder.batch`)."""
        from app.locations.folder.batch import write_batch

        return write_batch(self, jobs, parallel_reads=parallel_reads, unsettled=self._renames())

    def write_many_unsettled(
        self, jobs: Sequence[WriteJob], *, parallel_reads: bool = False
    ) -> list[WriteOutcome]:
        """Land the group; its renames share the next group's durability pass."""
        from app.locations.folder.batch import write_batch

        return write_batch(
            self, jobs, parallel_reads=parallel_reads, unsettled=self._renames(), settle=False
        )

    def _renames(self) -> Unsettled:
        """The renames waiting for a durability pass (made at the first group)."""
        if self._unsettled is None:
            from app.locations.folder.durability import Unsettled

            self._unsettled = Unsettled()
        return self._unsettled

    def settle_writes(self) -> None:
        """One ``syncfs`` for what :meth:`write_many_unsettled` left pending."""
        if self._unsettled is not None:
            self._unsettled.settle()

    def close(self) -> None:
        """Drop unsettled renames: their rows were never recorded, and never will be."""
        if self._unsettled is not None:
            self._unsettled.drop()

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
        """Rename the temp file ``tmp`` over ``name``, the old version kept in the trash.

        With ``check``, the file there must still be ``expected`` (checked right before the
        rename), else :class:`FileChanged`. The caller removes ``tmp`` if this raises.
        """
        old = self._existing_file(dir_fd, name, path)
        current = _meta(old) if old is not None else None
        if check and current != expected:
            raise FileChanged("changed while syncing; will retry", location=self.name, path=path)
        self._to_trash(dir_fd, name, path, old, keep=True, reason=OVERWRITTEN)
        written = os.stat(tmp, dir_fd=dir_fd, follow_symlinks=False)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        try:
            landed = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            # Deleted the moment it landed (by a user who saw it arrive): it was written all
            # the same, so that delete removes this version and must reach the others.
            landed = written
        meta = _meta(renamed_stat(written, landed))
        self._trash.wrote(path, meta)
        return meta

    def wrote(self, path: str, meta: FileMeta) -> None:
        """A batch renamed its copy of ``path`` into place (see :meth:`replace_temp`)."""
        self._trash.wrote(path, meta)

    def wrote_group(self, copies: list[tuple[str, FileMeta]]) -> None:
        """A batch renamed these copies into place together."""
        self._trash.wrote_group(copies)

    @contextlib.contextmanager
    def _parent_for_writing(self, path: str) -> Iterator[tuple[int, str]]:
        """Like ``at``, creating missing folders; a file in the way is a clear error."""
        parts = check_posix_relpath(path).split("/")
        with self.folder_for_writing(parts[:-1], path) as fd:
            yield fd, parts[-1]

    @contextlib.contextmanager
    def folder_for_writing(self, folders: list[str], path: str) -> Iterator[int]:
        """The folder ``folders`` to write ``path`` into, made if missing (see ``batch``)."""
        with contextlib.ExitStack() as stack:
            try:
                fd = stack.enter_context(self._tree.folder(folders, path, create=True))
            except (FileExistsError, NotADirectoryError):
                raise FileSyncError(
                    "a file stands where a folder is needed", location=self.name, path=path
                ) from None
            yield fd

    def _existing_file(self, dir_fd: int, name: str, path: str) -> os.stat_result | None:
        """The regular file at ``name`` (None if none); a folder or a link there is refused."""
        st = lstat_at(dir_fd, name)
        if st is None:
            return None
        if stat_mod.S_ISLNK(st.st_mode):
            raise self._tree.linked(path, path)
        if stat_mod.S_ISDIR(st.st_mode):
            raise FileSyncError(
                "a folder stands where the file should go", location=self.name, path=path
            )
        return st if stat_mod.S_ISREG(st.st_mode) else None

    def delete(self, path: str) -> None:
        """Move the file to the trash and remove folders it leaves empty."""
        try:
            with self._tree.at(path) as (dir_fd, name):
                st = lstat_at(dir_fd, name)
                if st is not None and stat_mod.S_ISLNK(st.st_mode):
                    raise self._tree.linked(path, path)
                if st is not None and stat_mod.S_ISREG(st.st_mode):
                    self._to_trash(dir_fd, name, path, st, keep=False, reason=DELETED)
        except (FileNotFoundError, NotADirectoryError):
            return
        self._remove_empty_parents(path)

    def rename(self, src: str, dst: str) -> FileMeta:
        """``renameat`` within the root; an existing target goes to the trash first."""
        vanished = FileVanished("file vanished before rename", location=self.name, path=src)
        try:
            with self._tree.at(src) as (src_fd, src_name):
                moving = self._existing_file(src_fd, src_name, src)
                if moving is None:
                    raise vanished
                with self._parent_for_writing(dst) as (dst_fd, dst_name):
                    old = self._existing_file(dst_fd, dst_name, dst)
                    self._to_trash(dst_fd, dst_name, dst, old, keep=False, reason=OVERWRITTEN)
                    fresh = self._trash.fresh_since(src, _meta(moving))
                    os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                    st = os.stat(dst_name, dir_fd=dst_fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            raise vanished from None
        self._remove_empty_parents(src)
        meta = _meta(st)
        if fresh is not None:  # still the engine's fresh copy, under its new name
            self._trash.wrote(dst, meta, at=fresh)
        return meta

    def copy_aside(self, src: str, dst: str, expected: FileMeta) -> FileMeta:
        """A copy ``dst`` of exactly the file ``expected`` at ``src`` (see ``keepcopy``)."""
        try:
            with (
                self._tree.at(src) as (src_fd, src_name),
                self._parent_for_writing(dst) as (dst_fd, dst_name),
            ):
                st = copy_checked(src_fd, src_name, dst_fd, dst_name, expected)
        except NotThatFile as exc:
            if stat_mod.S_ISLNK(exc.st.st_mode):
                raise self._tree.linked(src, src) from None
            raise FileChanged(
                "changed while syncing; will retry", location=self.name, path=src
            ) from None
        except (FileNotFoundError, NotADirectoryError):
            raise FileVanished(
                "file vanished before its conflict copy was made", location=self.name, path=src
            ) from None
        except OSError as exc:
            if exc.errno not in NO_LINKS:
                raise
            raise NotSupported(
                f"cannot name a copy here without replacing ({exc.strerror})",
                location=self.name,
                path=src,
            ) from None
        self._hard_links.saw(dst, st)
        return _meta(st)

    def _to_trash(
        self,
        dir_fd: int,
        name: str,
        path: str,
        st: os.stat_result | None,
        *,
        keep: bool,
        reason: str,
    ) -> None:
        """Put the regular file ``name`` (``st``) in the trash (a hard link if ``keep``), and
        note there why (``reason``) and when, for the trash view.

        The engine's own fresh copy is not kept when a newer version replaces it (a passing
        state); deleted, it is kept like any version, since a delete may leave it the last copy.
        """
        if st is None or not stat_mod.S_ISREG(st.st_mode):
            return
        if reason == OVERWRITTEN and self._trash.fresh_since(path, _meta(st)) is not None:
            if not keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=dir_fd)
            return
        stamp = time.strftime(STAMP_FORMAT, time.gmtime())
        parts = f"{TRASH_DIR}/{stamp}/{path}".split("/")
        with self._trash_folder(parts[:-1], path) as trash_fd:
            target = parts[-1]
            if lstat_at(trash_fd, target) is not None:
                target = f"{target}.{os.urandom(3).hex()}"
            try:
                if keep:
                    os.link(name, target, src_dir_fd=dir_fd, dst_dir_fd=trash_fd)
                else:
                    os.rename(name, target, src_dir_fd=dir_fd, dst_dir_fd=trash_fd)
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
                    raise
                copy_at(dir_fd, name, trash_fd, target)
                if not keep:
                    os.unlink(name, dir_fd=dir_fd)
        entry = "/".join([*parts[3:-1], target])
        with self._trash_folder(parts[:3], path) as stamp_fd:
            note_trashed(stamp_fd, entry, path, reason)
        self._trash.kept(st.st_size)

    @contextlib.contextmanager
    def _trash_folder(self, folders: list[str], path: str) -> Iterator[int]:
        with contextlib.ExitStack() as stack:
            try:
                fd = stack.enter_context(self._tree.folder(folders, path, create=True))
            except LinkedPath as exc:
                raise FileSyncError(
                    f"{exc.link} is a symbolic link; FileSync keeps its trash only in a real "
                    "folder: remove the link",
                    location=self.name,
                    path=path,
                ) from None
            yield fd

    def _remove_empty_parents(self, path: str) -> None:
        folders = path.split("/")[:-1]
        while folders:
            try:
                with self._tree.folder(folders[:-1], path) as fd:
                    os.rmdir(folders[-1], dir_fd=fd)
            except (OSError, FileSyncError):
                return
            folders.pop()

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
