"""A second file holding exactly the version the engine planned: a checked copy in the folder.

The engine keeps a conflict's losing version under its conflict-copy name before the winner
replaces the original name, so that name never goes missing. The copy must be a file of its
own: a hard link would share the loser's bytes with the name, and a program writing into the
name meanwhile (an editor saving in place, ``>``, a database, ``rsync --inplace``) would
rewrite the conflict copy too, leaving the loser nowhere.

The file is opened (no link followed) and checked to be the planned version; those very bytes
are cloned (``FICLONE``: shared blocks, no room needed, where the file system can) or copied
in the kernel (``copy_file_range``, else ``sendfile``) into a new temp file in the conflict
copy's folder; the file is checked again (a write into it meanwhile would have torn the copy),
the temp file is stamped and fsynced, and only then given its name, with a link that never
replaces an existing file. A full disk fails the copy (and with it the keep-aside: the winner
is not written and both versions stay, the user told to free some space).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat as stat_mod

from app.locations.base import TEMP_PREFIX, FileMeta
from app.locations.folder.scan import file_meta, renamed_stat

#: Errors saying this file system takes no hard links (the temp file cannot be given its name
#: without the risk of replacing one): the caller copies another way.
NO_LINKS = frozenset({errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP})
#: ``FICLONE`` from ``linux/fs.h``: the target shares the source's blocks (btrfs, XFS, ...).
_FICLONE = 0x40049409
#: Errors saying a clone or an in-kernel copy is not possible here: try the next way.
_TRY_NEXT = frozenset(
    {errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS}
)


class NotThatFile(Exception):
    """``src`` is not the regular file expected (changed, replaced, a link or a folder)."""

    def __init__(self, st: os.stat_result) -> None:
        super().__init__("not the expected file")
        self.st = st


def copy_checked(
    src_fd: int, src: str, dst_fd: int, dst: str, expected: FileMeta
) -> os.stat_result:
    """Copy ``src`` (in folder ``src_fd``) to the new name ``dst`` (in ``dst_fd``) if it is the
    regular file ``expected`` and stays so during the copy; return the copy's ``stat``.

    That stat is the name's after the link only if it still shows the copy: a user who saves
    over or deletes the new name at once made a change of their own, which the next look at
    the name must see (as for a landing, :func:`~app.locations.folder.scan.renamed_stat`).

    Raises :class:`NotThatFile` when the file is another one or was written during the copy
    (nothing is left behind), FileNotFoundError when it is gone, FileExistsError when ``dst``
    exists, an OSError with an errno in :data:`NO_LINKS` when the file system cannot name the
    copy without risking a replace, and any other OSError (a full disk) as it came.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(src, flags, dir_fd=src_fd)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise NotThatFile(os.stat(src, dir_fd=src_fd, follow_symlinks=False)) from None
    try:
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode) or file_meta(st) != expected:
            raise NotThatFile(st)
        tmp, out = _new_temp(dst_fd, stat_mod.S_IMODE(st.st_mode))
        try:
            try:
                _copy_all(fd, out, st.st_size)
                after = os.fstat(fd)
                if file_meta(after) != expected:
                    raise NotThatFile(after)
                os.utime(out, ns=(st.st_atime_ns, expected.mtime_ns))
                os.fsync(out)
                written = os.fstat(out)
            finally:
                os.close(out)
            os.link(tmp, dst, src_dir_fd=dst_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dst_fd)
    finally:
        os.close(fd)
    try:
        landed = os.stat(dst, dir_fd=dst_fd, follow_symlinks=False)
    except FileNotFoundError:  # the user deleted the copy already: it was made all the same
        return written
    return renamed_stat(written, landed)


def _new_temp(dir_fd: int, mode: int) -> tuple[str, int]:
    """A new temp file in the folder ``dir_fd`` (the scan removes one left by a crash)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        tmp = f"{TEMP_PREFIX}{os.urandom(8).hex()}"
        try:
            fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
        try:
            os.fchmod(fd, mode)
        except OSError:
            os.close(fd)
            os.unlink(tmp, dir_fd=dir_fd)
            raise
        return tmp, fd


def _copy_all(src: int, dst: int, size: int) -> None:
    """All ``size`` bytes of ``src`` into the empty ``dst``: cloned, else copied in the kernel."""
    try:
        fcntl.ioctl(dst, _FICLONE, src)
        return
    except OSError as exc:
        if exc.errno not in _TRY_NEXT:
            raise
    copied = 0
    use_range = hasattr(os, "copy_file_range")
    while copied < size:
        count = size - copied
        if use_range:
            try:
                done = os.copy_file_range(src, dst, count, copied, copied)
            except OSError as exc:
                if exc.errno not in _TRY_NEXT:
                    raise
                use_range = False
                continue
        else:
            os.lseek(dst, copied, os.SEEK_SET)
            done = os.sendfile(dst, src, copied, count)
        if done == 0:  # the file shrank: the check after the copy sees it
            return
        copied += done
