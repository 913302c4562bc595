"""The write side of a folder location: copies renamed into place, deletes, renames, the trash.

:class:`~app.locations.folder.location.FolderLocation` is one class to the engine; its steps
that change the folder live here, apart from opening, listing and reading it
(:mod:`app.locations.folder.location`). Every write lands as a temp file renamed over its
name (:mod:`app.locations.folder.staging`, in groups :mod:`app.locations.folder.batch`), and
every version a write, delete or rename replaces is moved to ``.filesync/trash/`` first
(:mod:`app.locations.folder.trash`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_mod
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO

from app.errors import FileChanged, FileSyncError, FileVanished, LinkedPath, NotSupported
from app.locations.base import META_DIR, FileMeta, Location, WriteJob, WriteOutcome
from app.locations.folder.hardlinks import HardLinkNames
from app.locations.folder.keepcopy import NO_LINKS, NotThatFile, copy_checked
from app.locations.folder.nofollow import LinkFreeTree, copy_at, lstat_at
from app.locations.folder.scan import file_meta as _meta
from app.locations.folder.scan import renamed_stat
from app.locations.folder.trash import DELETED, OVERWRITTEN, STAMP_FORMAT, TrashPolicy, note_trashed
from app.locations.names import check_posix_relpath

if TYPE_CHECKING:
    from app.locations.folder.durability import Unsettled

TRASH_DIR = f"{META_DIR}/trash"


class FolderWrites(Location):
    """What changes a folder: its writes, deletes, renames and copies aside, and the trash.

    Abstract: :class:`~app.locations.folder.location.FolderLocation` sets the state below in
    its ``__init__`` and adds the rest of the interface.
    """

    _tree: LinkFreeTree
    _trash: TrashPolicy
    _hard_links: HardLinkNames
    _unsettled: Unsettled | None

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
