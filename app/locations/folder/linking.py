"""A second name for exactly the version the engine planned: a checked hard link.

The engine keeps a conflict's losing version under its conflict-copy name before the winner
replaces the original name, so that name never goes missing. In a folder that second name is a
hard link: no bytes copied, no room needed on a full disk. The file is opened (``O_PATH``, no
link followed) and checked first, and that very file is linked through ``/proc/self/fd``, so a
save landing between the check and the link is never given the conflict name. Without
``/proc`` the name is linked instead and the result checked after.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod

from app.locations.base import FileMeta
from app.locations.folder.scan import file_meta

#: Errors saying this file system (or this file) takes no more hard links: copy instead.
NO_LINKS = frozenset({errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP})


class NotThatFile(Exception):
    """``src`` is not the regular file expected (changed, replaced, a link or a folder)."""

    def __init__(self, st: os.stat_result) -> None:
        super().__init__("not the expected file")
        self.st = st


def link_checked(
    src_fd: int, src: str, dst_fd: int, dst: str, expected: FileMeta
) -> os.stat_result:
    """Hard-link ``src`` (in folder ``src_fd``) as ``dst`` (in ``dst_fd``) if it is the regular
    file ``expected``; return the ``stat`` both names share now (the link changed its ctime).

    Raises :class:`NotThatFile` when the file is another one (nothing was linked, except
    without ``/proc`` where a save raced the link: ``dst`` then holds that save, a whole
    version under a spare name, left for the next sync), FileNotFoundError when it is gone,
    FileExistsError when ``dst`` exists, and an OSError with an errno in :data:`NO_LINKS`
    when the file system cannot link it.
    """
    fd = os.open(src, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
    try:
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode) or file_meta(st) != expected:
            raise NotThatFile(st)
        try:
            os.link(f"/proc/self/fd/{fd}", dst, dst_dir_fd=dst_fd, follow_symlinks=True)
        except FileNotFoundError:
            if os.path.isdir("/proc/self/fd"):
                raise  # the file itself is gone (its last name removed since the open)
            os.link(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
    finally:
        os.close(fd)
    linked = os.stat(dst, dir_fd=dst_fd, follow_symlinks=False)
    if (linked.st_dev, linked.st_ino) != (st.st_dev, st.st_ino):
        raise NotThatFile(linked)
    return linked
