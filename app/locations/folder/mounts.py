"""Which file system a folder is on: is it one whose changes from elsewhere raise no events?

inotify reports changes made through this computer's kernel only. On a network file system
(NFS, SMB/CIFS, 9p, Ceph, AFS, ...) or a FUSE mount (sshfs, ``rclone mount``), a file another
machine (or the FUSE daemon's own backend) changes raises no event here, so such a folder
must be polled as well as watched. The file system is told by ``statfs``'s ``f_type`` magic
number, the same test ``stat -f`` and GLib make; elsewhere than Linux nothing is known and
None is returned.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

#: ``f_type`` magic numbers (linux/magic.h) of file systems that do not report other
#: machines' changes, and the name a user knows each by.
REMOTE_FILE_SYSTEMS: dict[int, str] = {
    0x6969: "NFS",
    0x517B: "SMB",
    0xFF534D42: "SMB/CIFS",
    0xFE534D42: "SMB2",
    0x65735546: "FUSE",
    0x01021997: "9p",
    0x00C36400: "Ceph",
    0x5346414F: "AFS",
    0x73757245: "Coda",
    0x564C: "NCP",
    0x47504653: "GPFS",
    0x0BD00BD0: "Lustre",
}


def _statfs_type() -> Callable[[Path], int | None] | None:
    """What asks ``statfs`` for a folder's ``f_type``: the folder scan's C module where it was
    built, else libc through ``ctypes`` (loading ``ctypes`` took 1.5 ms of every start); None
    where that cannot be asked (not Linux, no C library)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if os.environ.get("FILESYNC_PURE_PYTHON") == "1":
            raise ImportError("FILESYNC_PURE_PYTHON=1")
        from app.locations.folder._scan import file_system_type as ask_in_c
    except ImportError:
        return _statfs_type_through_ctypes()
    return ask_in_c


def _statfs_type_through_ctypes() -> Callable[[Path], int | None] | None:
    import ctypes

    class StatFs(ctypes.Structure):
        """The head of ``struct statfs``: ``f_type`` is its first field (a ``long`` on Linux);
        the rest is room for the kernel to fill (the struct is 120 bytes on 64-bit systems)."""

        _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 256)]

    try:
        libc = ctypes.CDLL(None, use_errno=True)  # this process's libc
    except OSError:
        return None

    def ask(path: Path) -> int | None:
        buf = StatFs()
        if libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
            return None
        return int(buf.f_type) & 0xFFFFFFFF

    return ask


_STATFS_TYPE = _statfs_type()


def file_system_type(path: Path) -> int | None:
    """``statfs(path).f_type``, or None where it cannot be asked (not Linux, an error)."""
    return None if _STATFS_TYPE is None else _STATFS_TYPE(path)


def remote_file_system(path: Path) -> str | None:
    """The name of the network or FUSE file system ``path`` is on (``NFS``), else None."""
    kind = file_system_type(path)
    return None if kind is None else REMOTE_FILE_SYSTEMS.get(kind)


def poll_reason(root: Path, forced: bool) -> str | None:
    """Why the folder at ``root`` must be polled as well as watched, or None if it need not.

    ``forced``: the spec said ``?poll=SECONDS``.
    """
    if forced:
        return "?poll= asks for it"
    name = remote_file_system(root)
    if name is None:
        return None
    return f"it is on a {name} mount, where changes made elsewhere raise no events"
