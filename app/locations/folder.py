"""Local folders: the reference implementation of the Location interface.

Writes go to a temp file in the target's directory, are fsynced, stamped with the winning mtime
and then ``os.replace``d over the old file, so readers never see a partial file and a kill at
any moment leaves a stray temp file at worst (removed at the next start). Every version the
engine overwrites or deletes is moved to ``.filesync/trash/`` first, so each automatic decision
can be undone by hand; the trash is pruned after ``trash_days``.
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import logging
import os
import re
import shutil
import stat as stat_mod
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from app.errors import FileChanged, FileSyncError, FileVanished, LocationUnavailable
from app.locations.base import (
    CHUNK_SIZE,
    META_DIR,
    TEMP_PREFIX,
    Capabilities,
    ChangeSink,
    FileMeta,
    Listing,
    Location,
    check_relpath,
    is_internal,
)

if TYPE_CHECKING:
    from app.locations import LocationOptions
    from app.locations.spec import LocationSpec
    from app.watch.watcher import Watcher

log = logging.getLogger(__name__)

TRASH_DIR = f"{META_DIR}/trash"


class FolderLocation(Location):
    """A local folder, watched with OS events (inotify on Linux)."""

    kind = "folder"
    capabilities = Capabilities(
        mtime_precision_ns=1, can_set_mtime=True, can_rename=True, native_events=True
    )

    def __init__(self, root: Path, trash_days: float = 30.0) -> None:
        self.root = Path(root)
        self.trash_days = trash_days
        self._warned_links: set[str] = set()
        self._clean_temps = True

    @classmethod
    def from_spec(cls, spec: LocationSpec, options: LocationOptions) -> FolderLocation:
        """Build from a parsed ``folder:`` spec."""
        return cls(Path(spec.path), trash_days=options.trash_days)

    @property
    def key(self) -> str:
        return f"folder:{self.root}"

    @property
    def label(self) -> str:
        return re.sub(r"[^A-Za-z0-9_-]+", "-", self.root.name).strip("-") or "folder"

    @property
    def marker(self) -> Path:
        """The ``.filesync`` folder that marks this root as FileSync's."""
        return self.root / META_DIR

    def open(self) -> None:
        """Check the folder exists and is a folder."""
        if not self.root.is_dir():
            what = "is not a folder" if self.root.exists() else "does not exist"
            raise LocationUnavailable(f"{what}: create it or correct the path", location=self.name)

    def adopt(self, has_history: bool) -> None:
        """Create the root mark on first use; refuse a known root whose mark is gone."""
        if self.marker.is_dir():
            self.prune_trash()
            return
        if has_history:
            raise LocationUnavailable(
                f"the {META_DIR} folder in it is gone (drive unmounted or folder replaced?); "
                f"its files are not deleted elsewhere. If this is the right folder, create an "
                f"empty {META_DIR} folder in it to resume",
                location=self.name,
            )
        self.marker.mkdir(exist_ok=True)

    def check_available(self) -> None:
        """The root mark is one ``stat``: if it is gone, so is (our view of) the folder."""
        if not self.marker.is_dir():
            raise LocationUnavailable(
                f"the folder or its {META_DIR} mark vanished; holding its deletes",
                location=self.name,
            )

    def _full(self, path: str) -> Path:
        return self.root / check_relpath(path)

    def scan(self, prefix: str = "") -> Listing:
        """Walk the folder (or ``prefix`` below it) without following symlinks."""
        self.check_available()
        listing: Listing = {}
        start = self._full(prefix) if prefix else self.root
        stack = [start]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                if folder == self.root:
                    raise LocationUnavailable("the folder vanished", location=self.name) from None
                continue
            except NotADirectoryError:
                continue
            except PermissionError as exc:
                # Missing files under an unreadable folder must not read as deletes.
                raise LocationUnavailable(
                    f"cannot read folder {folder}: {exc.strerror}", location=self.name
                ) from None
            for entry in entries:
                rel = Path(entry.path).relative_to(self.root).as_posix()
                if is_internal(rel):
                    if self._clean_temps and entry.name.startswith(TEMP_PREFIX):
                        _unlink_quietly(entry.path)
                    continue
                try:
                    if entry.is_symlink():
                        self._warn_link(rel)
                    elif entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        listing[rel] = _meta(st)
                except FileNotFoundError:
                    continue
        if not prefix:
            self._clean_temps = False
        return listing

    def _warn_link(self, rel: str) -> None:
        if rel not in self._warned_links:
            self._warned_links.add(rel)
            log.warning("%s: skipping symbolic link %s (links are not followed)", self.name, rel)

    def stat(self, path: str) -> FileMeta | None:
        """``lstat`` the file; folders, links and missing names are None."""
        if is_internal(path):
            return None
        try:
            st = os.lstat(self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_mod.S_ISREG(st.st_mode):
            if stat_mod.S_ISLNK(st.st_mode):
                self._warn_link(path)
            return None
        return _meta(st)

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        """Open for reading, refusing to follow a symlink planted at the name."""
        full = self._full(path)
        try:
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise FileVanished("file vanished", location=self.name, path=path) from None
        except OSError as exc:
            raise FileSyncError(
                f"cannot read: {exc.strerror}", location=self.name, path=path
            ) from None
        with os.fdopen(fd, "rb") as f:
            yield f

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
        full = self._full(path)
        try:
            full.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise FileSyncError(
                "a file stands where a folder is needed", location=self.name, path=path
            ) from None
        tmp = full.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}"
        try:
            with open(tmp, "xb") as out:
                shutil.copyfileobj(source, out, CHUNK_SIZE)
                out.flush()
                os.fsync(out.fileno())
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
            if full.is_dir() and not full.is_symlink():
                raise FileSyncError(
                    "a folder stands where the file should go", location=self.name, path=path
                )
            if check and self.stat(path) != expected:
                raise FileChanged(
                    "changed while syncing; will retry", location=self.name, path=path
                )
            self._to_trash(path, keep=True)
            os.replace(tmp, full)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        st = os.lstat(full)
        return _meta(st)

    def delete(self, path: str) -> None:
        """Move the file to the trash and remove folders it leaves empty."""
        self._to_trash(path, keep=False)
        self._remove_empty_parents(path)

    def rename(self, src: str, dst: str) -> FileMeta:
        """``os.rename`` within the root; an existing target goes to the trash first."""
        full_src, full_dst = self._full(src), self._full(dst)
        full_dst.parent.mkdir(parents=True, exist_ok=True)
        self._to_trash(dst, keep=False)
        try:
            os.rename(full_src, full_dst)
        except FileNotFoundError:
            raise FileVanished(
                "file vanished before rename", location=self.name, path=src
            ) from None
        self._remove_empty_parents(src)
        st = os.lstat(full_dst)
        return _meta(st)

    def _to_trash(self, path: str, keep: bool) -> None:
        """Put the current version of ``path`` in the trash (a hard link if ``keep``)."""
        full = self._full(path)
        if not full.is_file() or full.is_symlink():
            if not keep and full.is_symlink():
                full.unlink()
            return
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        target = self.root / TRASH_DIR / stamp / path
        if target.exists():
            target = target.with_name(f"{target.name}.{uuid.uuid4().hex[:6]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if keep:
                os.link(full, target)
            else:
                os.replace(full, target)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copy2(full, target)
            if not keep:
                full.unlink()

    def _remove_empty_parents(self, path: str) -> None:
        parent = self._full(path).parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                return
            parent = parent.parent

    def housekeeping(self) -> None:
        """Prune the trash, so a folder synced for months does not keep every old version."""
        self.prune_trash()

    def prune_trash(self) -> None:
        """Delete trash folders older than ``trash_days``."""
        trash = self.root / TRASH_DIR
        if not trash.is_dir():
            return
        cutoff = time.time() - self.trash_days * 86400
        for entry in trash.iterdir():
            try:
                stamp = calendar.timegm(time.strptime(entry.name, "%Y%m%d-%H%M%S"))
            except ValueError:
                continue
            if stamp < cutoff:
                shutil.rmtree(entry, ignore_errors=True)

    def watcher(self, sink: ChangeSink, poll_interval: float) -> Watcher:
        """OS events through watchdog; polling if the OS refuses more watches."""
        from app.watch.local import LocalWatcher

        return LocalWatcher(self, sink, poll_interval)


def _meta(st: os.stat_result) -> FileMeta:
    """Size and mtime, tagged with inode and ctime: a save that replaced the file (new inode) or
    rewrote it and restored its mtime (new ctime) is seen even when size and mtime match."""
    return FileMeta(
        st.st_size, st.st_mtime_ns, (st.st_ino * 1_000_003 ^ st.st_ctime_ns) & _TAG_MASK
    )


_TAG_MASK = (1 << 63) - 1


def _unlink_quietly(path: str | os.PathLike[str]) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
