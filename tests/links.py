"""Making symbolic links the way users do, for the link tests and the convergence test."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def swap_in_link(folder: Path, outside: Path) -> None:
    """Leave a symbolic link to ``outside`` where ``folder`` was, its files now in ``outside``.

    What a user ends with after moving a folder to another disk and linking it back, done in
    one atomic step (``renameat2`` with ``RENAME_EXCHANGE``), so no watcher ever sees a moment
    where the folder is simply gone (which would be a real delete). A missing ``folder`` just
    becomes a link to a new empty ``outside``. ``outside`` must be on the same file system.
    """
    if not os.path.lexists(folder):
        outside.mkdir(parents=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.symlink_to(outside, target_is_directory=True)
        return
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.symlink_to(outside)  # for one instant a link to itself: exchanged with the folder
    src, dst = os.fsencode(outside), os.fsencode(folder)
    if _libc.renameat2(_AT_FDCWD, src, _AT_FDCWD, dst, _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        outside.unlink()
        raise OSError(err, os.strerror(err), str(folder))


def under_link(root: Path, path: str) -> bool:
    """True when ``path`` in ``root`` is, or is below, a symbolic link inside ``root``."""
    parts = path.split("/")
    return any((root.joinpath(*parts[:n])).is_symlink() for n in range(1, len(parts) + 1))
