"""Listing a folder location: every regular file below its root (or a prefix), with its meta.

A restart with nothing changed costs little more than this walk, so it does as little per entry
as it can: one ``fstatat`` per regular file (the entry's type comes from ``getdents``), names
joined once and interned (so every location's listing and index mirror share one string a
path), FileSync's own names recognised by the entry's name alone (temp files anywhere,
``.filesync`` and ``.filesyncignore`` only at the root). Each folder is opened relative to its
parent's descriptor with ``O_NOFOLLOW``, as :mod:`~app.locations.folder.nofollow` does for every
other access, so a symbolic link is reported (:attr:`Found.links`) and never followed, even one
swapped in for a folder during the walk.

A caller may ``prune`` folders it ignores entirely: nothing below them is read.

The per-folder loop has an optional C speedup, ``_scan.c`` (built by ``pip install``, where a
compiler is found): it lists and stats a whole folder with the interpreter lock released, so
two locations' scans use two cores, and builds each file's name and meta directly. It lists
exactly what :meth:`TreeScan._list_python` lists, which stays the fallback
(``FILESYNC_PURE_PYTHON=1`` forces it); :data:`SPEEDUP` says which one runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_mod
import threading
from collections.abc import Callable, Iterator
from sys import intern

from app.errors import LinkedPath, LocationUnavailable
from app.locations.base import IGNORE_FILE, META_DIR, TEMP_PREFIX, FileMeta, Listing
from app.locations.folder.hardlinks import FileId
from app.locations.folder.nofollow import LinkFreeTree, LinkInPath, is_link_at, open_folder
from app.locations.names import check_posix_relpath

#: Flags for a folder whose entries we list (see ``nofollow``).
_LIST = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_RDONLY
#: Names FileSync owns at the root of a location (temp files are recognised anywhere).
_ROOT_INTERNAL = frozenset({META_DIR, IGNORE_FILE})
#: Folders deeper than this below the scan's start are opened from the start folder instead of
#: from their parent, so a very deep tree never holds more descriptors than this at once.
_HELD_DEPTH = 64
_TAG_MASK = (1 << 63) - 1
_FORMAT, _REGULAR = 0o170000, stat_mod.S_IFREG  # S_IFMT's mask, and a regular file
#: ``tuple.__new__`` builds a FileMeta in C; calling ``FileMeta(...)`` runs its Python
#: ``__new__`` (a third of the cost of a file's meta).
_new_meta = tuple.__new__

#: ``_scan.list_folder`` (the C speedup), or None where it did not build or is turned off.
_list_folder: (
    Callable[
        [int, str, bool, Listing, set[str], dict[str, FileId], tuple[Listing, ...]],
        tuple[list[str], list[str]],
    ]
    | None
)
try:
    if os.environ.get("FILESYNC_PURE_PYTHON") == "1":
        raise ImportError("FILESYNC_PURE_PYTHON=1")
    from app.locations.folder._scan import configure, list_folder
except ImportError:  # not built (no compiler at install): the Python loop below
    _list_folder = None
else:
    configure(FileMeta, os.fsencode(TEMP_PREFIX), tuple(map(os.fsencode, sorted(_ROOT_INTERNAL))))
    _list_folder = list_folder
#: True when the folder scan runs its per-folder loop in C (``--self-check`` reports it).
SPEEDUP = _list_folder is not None

#: ``prune(folder)`` is True for a folder (relative path, no trailing slash) to skip whole.
Prune = Callable[[str], bool]


def file_meta(st: os.stat_result) -> FileMeta:
    """Size and mtime, tagged with inode and ctime: a save that replaced the file (new inode) or
    rewrote it and restored its mtime (new ctime) is seen even when size and mtime match.

    :meth:`TreeScan._list` computes the same inline; the two must stay equal.
    """
    return meta_of(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def meta_of(size: int, mtime_ns: int, ino: int, ctime_ns: int) -> FileMeta:
    """:func:`file_meta` of these four fields of a stat (as the C copy reports a landed file).

    ``tuple.__new__`` builds the FileMeta in C (``FileMeta(...)`` runs a Python ``__new__``).
    """
    return _new_meta(FileMeta, (size, mtime_ns, (ino * 1_000_003 ^ ctime_ns) & _TAG_MASK))


def renamed_stat(written: os.stat_result, landed: os.stat_result) -> os.stat_result:
    """What to record for a temp file FileSync renamed into place: ``landed``, the name's stat
    taken after the rename, only if it still shows that file (the rename changed its ctime,
    nothing else); else ``written``, the temp file's stat from just before the rename.

    A user who saves (replaces or rewrites) the file in between must not have that save
    recorded as FileSync's copy: it would never be synced, and a later edit elsewhere would
    overwrite it without a conflict copy. With ``written`` recorded, the next look at the name
    sees the save as an edit. ``_copy.c``'s ``land_one`` applies the same rule.
    """
    same = (written.st_dev, written.st_ino, written.st_size, written.st_mtime_ns) == (
        landed.st_dev,
        landed.st_ino,
        landed.st_size,
        landed.st_mtime_ns,
    )
    return landed if same else written


class _Running:
    """The listings of the folder scans running now: each scan's C loop shares equal integers
    (and equal metas) with the others' instead of building its own (see ``_scan.c``).

    The engine scans every location at once, so a tree copied with its times holds each mtime
    once, not once a location (4.6 MiB for 100,000 files). A listing stays here, for the scans
    still running, until none runs: the one that ends first still serves the others. At most
    :data:`_PEERS` are kept, so overlapping scans that never stop all at once hold no more.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._listings: list[Listing] = []

    @contextlib.contextmanager
    def joined(self, files: Listing) -> Iterator[None]:
        """Offer ``files`` to the other scans while this one runs."""
        with self._lock:
            self._active += 1
            self._listings = [*self._listings[-_PEERS + 1 :], files]
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if not self._active:
                    self._listings = []

    def peers(self, files: Listing) -> tuple[Listing, ...]:
        """The listings a scan filling ``files`` may share with."""
        return tuple(d for d in self._listings if d is not files)


_PEERS = 8
_RUNNING = _Running()


class Found:
    """What one scan found: files, the links it skipped, files with several names."""

    __slots__ = ("files", "hard_links", "links")

    def __init__(self) -> None:
        self.files: Listing = {}
        self.links: set[str] = set()
        self.hard_links: dict[str, FileId] = {}


class _Frame:
    """A folder being walked: its descriptor (None: open children from the start folder), its
    path parts below the start, its relative path with a trailing slash, its subfolders."""

    __slots__ = ("base", "fd", "parts", "subfolders")

    def __init__(
        self, fd: int | None, parts: list[str], base: str, subfolders: Iterator[str]
    ) -> None:
        self.fd = fd
        self.parts = parts
        self.base = base
        self.subfolders = subfolders


class TreeScan:
    """One walk of ``tree`` below ``prefix``; :meth:`run` returns what it found."""

    def __init__(
        self, tree: LinkFreeTree, prefix: str, *, clean_temps: bool, prune: Prune | None = None
    ) -> None:
        self.tree = tree
        self.prefix = prefix
        self.clean_temps = clean_temps
        self.prune = prune
        self.found = Found()

    def run(self) -> Found:
        """Walk the tree; a vanished or unreadable root is :class:`LocationUnavailable`."""
        start = check_posix_relpath(self.prefix).split("/") if self.prefix else []
        try:
            with (
                _RUNNING.joined(self.found.files),
                self.tree.folder(start, self.prefix, listable=True) as fd,
            ):
                self._walk(fd, start)
        except LinkedPath as exc:
            self.found.links.add(exc.link)
        except (FileNotFoundError, NotADirectoryError):
            if not start:
                raise LocationUnavailable("the folder vanished", location=self.tree.name) from None
        except PermissionError as exc:
            raise self._unreadable(start, exc) from None
        return self.found

    def _walk(self, start_fd: int, start: list[str]) -> None:
        """Depth first from the folder ``start_fd``; every descriptor opened here is closed."""
        base = "".join(f"{p}/" for p in start)
        stack = [_Frame(None, [], base, iter(self._list(start_fd, base, not start)))]
        try:
            while stack:
                frame = stack[-1]
                name = next(frame.subfolders, None)
                if name is None:
                    stack.pop()
                    if frame.fd is not None:
                        os.close(frame.fd)
                    continue
                rel = frame.base + name
                if self.prune is not None and self.prune(rel):
                    continue
                parts = [*frame.parts, name]
                fd = self._open(start_fd if frame.fd is None else frame.fd, frame, name, start)
                if fd is None:
                    continue
                try:
                    subfolders = self._list(fd, rel + "/", False)
                except BaseException:
                    os.close(fd)
                    raise
                held = len(parts) <= _HELD_DEPTH
                if not held:
                    os.close(fd)
                stack.append(_Frame(fd if held else None, parts, rel + "/", iter(subfolders)))
        finally:
            for frame in stack:
                if frame.fd is not None:
                    os.close(frame.fd)

    def _open(self, dir_fd: int, frame: _Frame, name: str, start: list[str]) -> int | None:
        """Open the subfolder ``name`` for listing; None if it vanished or is a link now."""
        try:
            if frame.fd is None and frame.parts:  # a deep folder: reopen the way from start
                return open_folder(dir_fd, [*frame.parts, name], listable=True)
            return os.open(name, _LIST, dir_fd=dir_fd)
        except LinkInPath as exc:
            self.found.links.add("/".join([*start, exc.link]))
        except FileNotFoundError:
            pass
        except PermissionError as exc:
            raise self._unreadable([*start, *frame.parts, name], exc) from None
        except OSError as exc:  # a folder replaced by a link (or a file) since it was listed
            if exc.errno == errno.ELOOP or is_link_at(dir_fd, name):
                self.found.links.add(frame.base + name)
            elif exc.errno != errno.ENOTDIR:
                raise
        return None

    def _list(self, fd: int, base: str, at_root: bool) -> list[str]:
        """Add the files and links of the folder ``fd`` (path ``base``); return its subfolders."""
        if _list_folder is None:
            return self._list_python(fd, base, at_root)
        found = self.found
        subfolders, temps = _list_folder(
            fd,
            base,
            at_root,
            found.files,
            found.links,
            found.hard_links,
            _RUNNING.peers(found.files),
        )
        if self.clean_temps:
            for name in temps:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=fd)
        return subfolders

    def _list_python(self, fd: int, base: str, at_root: bool) -> list[str]:
        """:meth:`_list` without the C speedup (and the reference it must equal)."""
        found = self.found
        files, subfolders = found.files, []
        with os.scandir(fd) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(TEMP_PREFIX) or (at_root and name in _ROOT_INTERNAL):
                    if self.clean_temps and name.startswith(TEMP_PREFIX):
                        with contextlib.suppress(OSError):
                            os.unlink(name, dir_fd=fd)
                    continue
                try:
                    if entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        mode = st.st_mode
                        if mode & _FORMAT == _REGULAR:
                            rel = intern(base + name)
                            # file_meta inlined: a call a file is a tenth of the walk's time
                            files[rel] = _new_meta(
                                FileMeta,
                                (
                                    st.st_size,
                                    st.st_mtime_ns,
                                    (st.st_ino * 1_000_003 ^ st.st_ctime_ns) & _TAG_MASK,
                                ),
                            )
                            if st.st_nlink > 1:
                                found.hard_links[rel] = (st.st_dev, st.st_ino)
                            continue
                        if stat_mod.S_ISLNK(mode):  # replaced by a link since it was listed
                            found.links.add(base + name)
                        elif stat_mod.S_ISDIR(mode):
                            subfolders.append(name)
                    elif entry.is_dir(follow_symlinks=False):
                        subfolders.append(name)
                    elif entry.is_symlink():
                        found.links.add(base + name)
                except FileNotFoundError:
                    continue
        return subfolders

    def _unreadable(self, parts: list[str], exc: PermissionError) -> LocationUnavailable:
        """Missing files under an unreadable folder must not read as deletes."""
        where = "/".join(parts) or "."
        return LocationUnavailable(
            f"cannot read folder {where}: {exc.strerror}", location=self.tree.name
        )
