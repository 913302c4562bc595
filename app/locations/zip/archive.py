"""The archive file on disk: its cached central directory, and replacing it atomically.

A change is noticed by ``stat()`` alone: the directory is read again only when the device,
inode, size or mtime differ from what was read last (a failed read is remembered the same
way, so a damaged archive is not re-parsed every poll). A rewrite goes to a temp file in the
same folder, is fsynced and renamed over the archive, so a crash leaves the old or the new
archive; just before the rename the archive is stat'ed again, and if another program changed
it meanwhile the caller redoes its work on top of their version.

Not thread-safe by itself: :class:`~app.locations.zip.ZipLocation` calls it under its lock.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from app.errors import CorruptArchive, FileSyncError, LocationUnavailable
from app.locations.base import TEMP_PREFIX
from app.locations.zip.format import Directory, end_records
from app.locations.zip.parse import parse_directory
from app.locations.zip.stream import Item, fsync_dir, rewrite

log = logging.getLogger(__name__)

#: ``(st_dev, st_ino, st_size, st_mtime_ns)``: what tells us the archive changed.
Sig = tuple[int, int, int, int]


def _sig(st: os.stat_result) -> Sig:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class ArchiveFile:
    """One archive path: the file descriptor and directory we last read, and rewrites."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        #: Open on the archive the directory was read from; readers ``dup`` it.
        self.fd: int | None = None
        self.sig: Sig | None = None
        self.directory = Directory((), 0, b"")
        self._failure: tuple[Sig, FileSyncError] | None = None

    @property
    def folder(self) -> Path:
        """The folder of the real archive (through a symlink): where temp files must go."""
        return Path(os.path.realpath(self.path)).parent

    def stat_sig(self) -> Sig:
        """Stat the archive; raise LocationUnavailable if it is gone or not a file."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise LocationUnavailable(
                "the archive has disappeared; restore it (FileSync will not assume it is empty)",
                location=self.name,
            ) from None
        except OSError as exc:
            raise LocationUnavailable(
                f"cannot read the archive: {exc}", location=self.name
            ) from exc
        if stat.S_ISDIR(st.st_mode):
            raise LocationUnavailable(
                f"this is a folder, not a ZIP archive (for a folder use folder:{self.path})",
                location=self.name,
            )
        if not stat.S_ISREG(st.st_mode):
            raise LocationUnavailable("the path is not a regular file", location=self.name)
        return _sig(st)

    def refresh(self) -> bool:
        """Re-read the central directory if the archive changed; True if it was re-read."""
        sig = self.stat_sig()
        if sig == self.sig:
            return False
        if self._failure is not None and self._failure[0] == sig:
            raise self._failure[1]
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise LocationUnavailable(
                f"cannot open the archive: {exc}", location=self.name
            ) from exc
        try:
            st = os.fstat(fd)
            sig = _sig(st)
            directory = parse_directory(fd, st.st_size)
        except (CorruptArchive, OSError) as exc:
            os.close(fd)
            error = CorruptArchive(
                f"{getattr(exc, 'message', exc)}; the file is left untouched - "
                "move it away or repair it",
                location=self.name,
            )
            self._failure = (sig, error)
            raise error from None
        self._install(fd, sig, directory)
        return True

    def _install(self, fd: int, sig: Sig, directory: Directory) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.fd, self.sig, self.directory, self._failure = fd, sig, directory, None

    def close(self) -> None:
        """Forget the archive (open readers keep their own descriptors)."""
        if self.fd is not None:
            os.close(self.fd)
        self.fd = self.sig = None

    def open_temp(self, suffix: str, mode: int) -> tuple[int, Path]:
        """Create ``.filesync-tmp-<archive>-<random><suffix>`` beside the archive."""
        path = self.folder / f"{TEMP_PREFIX}{self.path.name}-{secrets.token_hex(6)}{suffix}"
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode), path

    def open_staging(self) -> int:
        """A temp file for staged content, unlinked at once so a crash leaves nothing behind."""
        try:
            fd, path = self.open_temp(".stage", 0o600)
            path.unlink()
        except OSError as exc:
            raise LocationUnavailable(
                f"cannot write beside the archive: {exc}", location=self.name
            ) from exc
        return fd

    def create_empty(self) -> None:
        """Create an empty archive, atomically and never over a file that appeared meanwhile.

        A hard link does both; filesystems without links (FAT, exFAT) get an exclusive create
        of the 22-byte archive instead.
        """
        empty = end_records(0, 0, 0, b"")
        target = os.path.realpath(self.path)
        try:
            fd, tmp = self.open_temp(".zip", 0o666)
            try:
                os.write(fd, empty)
                os.fsync(fd)
                try:
                    os.link(tmp, target)
                except FileExistsError:
                    return
                except OSError:
                    self._create_exclusive(target, empty)
            finally:
                os.close(fd)
                tmp.unlink()
        except OSError as exc:
            raise LocationUnavailable(
                f"cannot create the archive: {exc}", location=self.name
            ) from exc
        log.info("%s: created an empty archive", self.name)

    @staticmethod
    def _create_exclusive(target: str, data: bytes) -> None:
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove_stale_temps(self, max_age: float) -> None:
        """Remove rewrite temp files of this archive left by a crash more than ``max_age`` ago."""
        cutoff = time.time() - max_age
        pattern = f"{TEMP_PREFIX}{glob.escape(self.path.name)}-*.zip"
        with contextlib.suppress(OSError):
            for leftover in self.folder.glob(pattern):
                with contextlib.suppress(OSError):
                    if leftover.stat().st_mtime < cutoff:
                        leftover.unlink()
                        log.info("%s: removed leftover %s", self.name, leftover.name)

    def replace(self, items: Iterable[Item]) -> bool:
        """Write a new archive of ``items`` and rename it over this one.

        Return False (nothing replaced) if the archive changed since it was read: the caller
        refreshes and lays the members out again. On success the new directory is installed without
        re-parsing anything.
        """
        assert self.fd is not None and self.sig is not None
        old = self.directory
        try:
            fd, tmp = self.open_temp(".zip", 0o600)
        except OSError as exc:
            raise LocationUnavailable(
                f"cannot write beside the archive: {exc}", location=self.name
            ) from exc
        done = False
        try:
            try:
                entries = rewrite(fd, (self.fd, old.prefix_end), items, old.comment)
            except (CorruptArchive, OSError):
                if self.stat_sig() != self.sig:
                    return False
                raise
            with contextlib.suppress(OSError):  # FAT cannot; the archive still gets written
                os.fchmod(fd, stat.S_IMODE(os.fstat(self.fd).st_mode))
            os.fsync(fd)
            if self.stat_sig() != self.sig:
                return False
            st = os.fstat(fd)
            os.replace(tmp, os.path.realpath(self.path))
            done = True
        except OSError as exc:
            raise LocationUnavailable(
                f"could not rewrite the archive: {exc}", location=self.name
            ) from exc
        finally:
            if not done:
                os.close(fd)
                with contextlib.suppress(OSError):
                    tmp.unlink()
        fsync_dir(self.folder)
        prefix_end = min((e.offset for e in entries), default=old.prefix_end)
        self._install(fd, _sig(st), Directory(entries, prefix_end, old.comment))
        return True
