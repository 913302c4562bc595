"""Reaching a file inside a folder location without ever following a symbolic link on the way.

A folder location opens the folders on the way to a file one component at a time, each one
relative to the previous one's descriptor and with ``O_NOFOLLOW``, and then acts on the final
name relative to its folder's descriptor (``openat``, ``renameat``, ``unlinkat``, ...). A link
anywhere on the way, even one planted between a check and the use, makes the open fail instead
of leading outside the root, so there is no check-then-use race. The root itself may be a link
(a ``~/Sync`` that points to another disk); only what is inside it is never followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_mod
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from app.errors import LinkedPath, LocationUnavailable
from app.locations.names import check_posix_relpath
from app.messages import shown

#: Flags for a folder we only pass through (``O_PATH`` needs no read permission).
_PASS = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_PATH", os.O_RDONLY)
#: Flags for a folder whose entries we list.
_LIST = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_RDONLY
_CHUNK = 1024 * 1024
#: Folders a reading batch keeps open at most (a file's folder is then one ``dup`` away).
KEPT_FOLDERS = 256


class LinkInPath(Exception):
    """``link`` (a relative path) is a symbolic link standing where a folder was expected."""

    def __init__(self, link: str) -> None:
        super().__init__(link)
        self.link = link


def open_root(root: str | os.PathLike[str]) -> int:
    """Open the location's root folder (following a link there is fine: the user chose it)."""
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_folder(
    root_fd: int, folders: Sequence[str], *, create: bool = False, listable: bool = False
) -> int:
    """Return a new descriptor of ``root/folders[0]/folders[1]/...``, never following a link.

    ``create`` makes missing folders on the way (each ``mkdir`` is relative to its parent's
    descriptor, so it cannot land behind a link either). ``listable`` opens the last folder for
    reading its entries. Raises :class:`LinkInPath` naming the first component that is a link,
    ``NotADirectoryError`` if one is a file, ``FileNotFoundError`` if one is missing.
    """
    fd = os.dup(root_fd)
    try:
        for n, name in enumerate(folders):
            flags = _LIST if listable and n == len(folders) - 1 else _PASS
            child = _open_child(fd, name, flags, create, folders[: n + 1])
            os.close(fd)
            fd = child
        if listable and not folders:
            child = os.open(".", _LIST, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_child(fd: int, name: str, flags: int, create: bool, rel: Sequence[str]) -> int:
    try:
        return os.open(name, flags, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as exc:
        if is_link_at(fd, name):
            raise LinkInPath("/".join(rel)) from None
        if exc.errno == errno.ELOOP:  # pragma: no cover - a link that vanished meanwhile
            raise LinkInPath("/".join(rel)) from None
        raise
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, dir_fd=fd)
    return _open_child(fd, name, flags, False, rel)


def is_link_at(dir_fd: int, name: str) -> bool:
    """True when ``name`` in the folder ``dir_fd`` is a symbolic link."""
    st = lstat_at(dir_fd, name)
    return st is not None and stat_mod.S_ISLNK(st.st_mode)


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """``lstat`` of ``name`` in the folder ``dir_fd``; None when there is nothing there."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None


def copy_at(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    """Copy a file between two folders given by descriptors (where hard links are refused).

    ``shutil`` loads here, not with the module: it brings ``bz2`` and ``lzma`` (2 ms) to
    every start, and only this copy uses it.
    """
    import shutil

    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
    with os.fdopen(fd_in, "rb") as f_in:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(dst, flags, 0o666, dir_fd=dst_fd), "wb") as f_out:
            shutil.copyfileobj(f_in, f_out, _CHUNK)
            f_out.flush()
            st = os.fstat(f_in.fileno())
            os.utime(f_out.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))


class LinkFreeTree:
    """A location's root, whose insides are only ever reached without following links.

    Remembers the links it met (by a scan, a stat or a refused write) for
    :meth:`~app.locations.base.Location.links`; thread-safe, since a polling watcher scans
    from its own thread.
    """

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self._links: set[str] = set()
        self._lock = threading.Lock()
        #: While :meth:`keeping_folders` is entered (how deep), the folders reads opened.
        self._keeping = 0
        self._kept: dict[tuple[str, ...], int] = {}

    @contextlib.contextmanager
    def folder(
        self, folders: Sequence[str], path: str, *, create: bool = False, listable: bool = False
    ) -> Iterator[int]:
        """A descriptor of the folder ``folders`` inside the root (see :func:`open_folder`).

        A link on the way is remembered and refused with :class:`LinkedPath` about ``path``.
        """
        fd = self._open(folders, path, create=create, listable=listable)
        try:
            yield fd
        finally:
            os.close(fd)

    def _open(
        self, folders: Sequence[str], path: str, *, create: bool = False, listable: bool = False
    ) -> int:
        try:
            root_fd = open_root(self.root)
        except (FileNotFoundError, NotADirectoryError):
            raise LocationUnavailable("the folder vanished", location=self.name) from None
        try:
            return open_folder(root_fd, folders, create=create, listable=listable)
        except LinkInPath as exc:
            raise self.linked(exc.link, path) from None
        finally:
            os.close(root_fd)

    @contextlib.contextmanager
    def keeping_folders(self) -> Iterator[None]:
        """While inside, :meth:`read_at` keeps the folders it opens, up to ``KEPT_FOLDERS``.

        Copying a small file otherwise costs more system calls to reach its folder (root, each
        folder on the way, their closes) than to read it. A kept folder is the one the path
        named when it was first opened, reached without following a link as always; if it is
        renamed or removed meanwhile, a read through it finds the file the scan saw, or none
        (the file vanished and is synced again), never one outside the root.
        """
        with self._lock:
            self._keeping += 1
        try:
            yield
        finally:
            with self._lock:
                self._keeping -= 1
                kept = self._kept if not self._keeping else {}
                if not self._keeping:
                    self._kept = {}
            for fd in kept.values():
                os.close(fd)

    @contextlib.contextmanager
    def read_at(self, path: str) -> Iterator[tuple[int, str]]:
        """Like :meth:`at`, through a kept folder while :meth:`keeping_folders` is entered."""
        parts = check_posix_relpath(path).split("/")
        folders = tuple(parts[:-1])
        fd = self._kept_copy(folders, path)
        try:
            yield fd, parts[-1]
        finally:
            os.close(fd)

    def _kept_copy(self, folders: tuple[str, ...], path: str) -> int:
        """A new descriptor of ``folders``: a copy of the kept one, opened (and kept) if none."""
        with self._lock:
            kept = self._kept.get(folders) if self._keeping else None
            if kept is not None:
                return os.dup(kept)
        fd = self._open(folders, path)
        with self._lock:
            if not self._keeping or folders in self._kept:
                return fd
            if len(self._kept) >= KEPT_FOLDERS:  # paths come sorted: the old ones are done
                for old in self._kept.values():
                    os.close(old)
                self._kept.clear()
            self._kept[folders] = fd
            return os.dup(fd)

    @contextlib.contextmanager
    def at(self, path: str, *, create: bool = False) -> Iterator[tuple[int, str]]:
        """The descriptor of ``path``'s folder and its last name, for the ``*at`` calls."""
        parts = check_posix_relpath(path).split("/")
        with self.folder(parts[:-1], path, create=create) as fd:
            yield fd, parts[-1]

    def linked(self, link: str, path: str) -> LinkedPath:
        """Remember ``link`` and return the error refusing to go through it."""
        with self._lock:
            self._links.add(link)
        return LinkedPath(
            f"{shown(link)} is a symbolic link; FileSync does not follow links",
            location=self.name,
            path=path,
            link=link,
        )

    def links(self) -> frozenset[str]:
        """The links met so far (relative paths)."""
        with self._lock:
            return frozenset(self._links)

    def replace_links(self, prefix: str, found: set[str]) -> None:
        """A scan of ``prefix`` (``""``: everything) found exactly these links there."""
        with self._lock:
            inside = prefix + "/"
            kept = {p for p in self._links if prefix and p != prefix and not p.startswith(inside)}
            self._links = kept | found

    def forget_links(self, path: str, including_path: bool) -> None:
        """The folders on the way to ``path`` (and ``path``) are no links: one was replaced."""
        with self._lock:
            if not self._links:
                return
            parts = path.split("/")
            for n in range(1, len(parts) + (1 if including_path else 0)):
                self._links.discard("/".join(parts[:n]))
