"""Making a folder's writes durable: ``syncfs`` per file system, or ``fsync`` per folder.

A batch (:mod:`app.locations.folder.batch`) makes its temp files durable before renaming them
into place and its renames durable before the engine records them. One ``syncfs`` covers every
file and folder of a file system at once; where there is none (not Linux), each folder renamed
into is fsynced. :class:`Unsettled` holds the renames of a group whose pass is shared with the
next group's (one ``syncfs`` per group instead of two).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Callable, Iterable, Iterator


def _find_syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs`` (Linux), or None where there is none: then every file is fsynced."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to load
        return None
    found: Callable[[int], int] | None = getattr(libc, "syncfs", None)
    return found


_SYNCFS = _find_syncfs()
#: True where one ``syncfs`` can make a whole file system's writes durable.
SYNCFS = _SYNCFS is not None


def syncfs_each(folders: Iterable[int]) -> OSError | None:
    """``syncfs`` once for each file system the ``folders`` (descriptors) are on; the error."""
    try:
        for fd in _one_per_device(folders).values():
            with _readable(fd) as readable:
                if (error := _syncfs(readable)) is not None:
                    return error
    except OSError as exc:
        return exc
    return None


def fsync_folders(folders: Iterable[int]) -> OSError | None:
    """``fsync`` each of ``folders`` (their renames become durable); the error, if any."""
    try:
        for fd in set(folders):
            with _readable(fd) as readable:
                os.fsync(readable)
    except OSError as exc:
        return exc
    return None


class Unsettled:
    """Renames into a folder that no durability pass has covered yet.

    One open folder is kept for each file system renamed into (its own descriptor, which
    ``syncfs`` accepts, where O_PATH is not), so the next pass covers them wherever it runs.
    """

    def __init__(self) -> None:
        self._devices: dict[int, int] = {}
        #: Pending renames were dropped without a pass (the location closed): the next pass
        #: must fail, so the engine records none of them.
        self._dropped = False

    def __bool__(self) -> bool:
        return bool(self._devices) or self._dropped

    def add(self, folders: Iterable[int]) -> None:
        """Keep a folder of each file system ``folders`` (descriptors) are on."""
        for device, fd in _one_per_device(folders).items():
            if device not in self._devices:
                self._devices[device] = os.open(
                    ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd
                )

    def settle(self) -> None:
        """Make every pending rename durable; raise if that failed.

        Nothing is pending afterwards either way: after a failure the engine records none of
        them, so there is nothing to settle again.
        """
        error = self.sync_with(())
        if error is not None:
            raise error

    def sync_with(self, folders: Iterable[int]) -> OSError | None:
        """``syncfs`` the file systems of ``folders`` and of every pending rename; the error.

        Nothing is pending afterwards either way (see :meth:`settle`).
        """
        try:
            if self._dropped:
                return OSError(errno.EIO, "closed before its last copies were made durable")
            pending = list(self._devices.values())
            return syncfs_each([*folders, *pending])
        finally:
            self._forget()

    def drop(self) -> None:
        """The location closes: close the kept folders; the next pass fails (see above)."""
        self._dropped = bool(self._devices)
        devices, self._devices = self._devices, {}
        _close_all(devices.values())

    def _forget(self) -> None:
        devices, self._devices = self._devices, {}
        self._dropped = False
        _close_all(devices.values())


def _close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _one_per_device(folders: Iterable[int]) -> dict[int, int]:
    """File system -> one of ``folders`` on it."""
    devices: dict[int, int] = {}
    for fd in set(folders):
        devices.setdefault(os.fstat(fd).st_dev, fd)
    return devices


def _syncfs(readable: int) -> OSError | None:
    assert _SYNCFS is not None
    if _SYNCFS(readable) != 0:
        err = ctypes.get_errno()
        return OSError(err, os.strerror(err))
    return None


@contextlib.contextmanager
def _readable(dir_fd: int) -> Iterator[int]:
    """A descriptor of the folder ``dir_fd`` that ``fsync`` and ``syncfs`` accept (not O_PATH)."""
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)
