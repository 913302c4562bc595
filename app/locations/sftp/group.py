"""A group of small uploads in a few round trips, for :meth:`SftpLocation.write_many`.

The engine hands a location its copies in groups (``batched_writes``). One file at a time an
upload costs three round trips; a group costs three in all: every temp file opened at once;
then every file's writes, time, close and stat (and its target's stat, for the guard); then
every rename. Each reply is still checked per file, so one failure fails only its file.
"""

from __future__ import annotations

from dataclasses import dataclass

import paramiko
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_EXTENDED,
    CMD_FSETSTAT,
    CMD_LSTAT,
    CMD_OPEN,
    CMD_REMOVE,
    CMD_RENAME,
    CMD_WRITE,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_TRUNC,
    SFTP_FLAG_WRITE,
    int64,
)

from app.locations.sftp.protocol import POSIX_RENAME, REQUEST_SIZE, Pipeline, StatusError, encode

#: Files up to this size go into a group (read whole into memory); bigger ones stream alone.
GROUP_FILE_LIMIT = 256 * 1024


@dataclass
class GroupPut:
    """One small file of a group: where it goes, and what the server answered."""

    temp: str
    data: bytes
    mtime_s: int
    target: str
    attrs: paramiko.SFTPAttributes | None = None
    current: paramiko.SFTPAttributes | None = None
    error: OSError | None = None


def upload_group(sftp: paramiko.SFTPClient, puts: list[GroupPut]) -> None:
    """Upload every ``put`` to its temp name, stamped; fill in its ``attrs`` (the temp file
    as listed), ``current`` (what its target holds now) or ``error``."""
    pipe = Pipeline(sftp)
    flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC
    opens = [pipe.send(CMD_OPEN, encode(p.temp), flags, paramiko.SFTPAttributes()) for p in puts]
    handles: list[bytes | None] = []
    for put, num in zip(puts, opens, strict=True):  # every handle first: the writes of the
        try:  # whole group then go out together
            handles.append(pipe.handle(num))
        except StatusError as exc:
            put.error = exc
            handles.append(None)
    sent: list[tuple[GroupPut, list[int], int, int]] = []
    for put, handle in zip(puts, handles, strict=True):
        if handle is None:
            continue
        data = put.data
        nums = [
            pipe.send(CMD_WRITE, handle, int64(start), data[start : start + REQUEST_SIZE])
            for start in range(0, len(data), REQUEST_SIZE)
        ]
        times = paramiko.SFTPAttributes()
        times.st_atime = times.st_mtime = put.mtime_s
        nums.append(pipe.send(CMD_FSETSTAT, handle, times))
        nums.append(pipe.send(CMD_CLOSE, handle))
        listed = pipe.send(CMD_LSTAT, encode(put.temp))
        current = pipe.send(CMD_LSTAT, encode(put.target))
        sent.append((put, nums, listed, current))
    for put, nums, listed, current in sent:
        try:
            for num in nums:
                pipe.status(num)
            put.attrs = pipe.attrs(listed)
            put.current = pipe.attrs(current)
            if put.attrs is None or put.attrs.st_size != len(put.data):
                raise StatusError(-1, "the uploaded file is not whole on the server")
        except StatusError as exc:
            put.error = exc


def rename_group(
    sftp: paramiko.SFTPClient, moves: list[tuple[str, str]], *, posix: bool
) -> list[StatusError | None]:
    """Rename every (source, target) at once; one result per move (None: done)."""
    pipe = Pipeline(sftp)
    if posix:
        nums = [pipe.send(CMD_EXTENDED, POSIX_RENAME, encode(a), encode(b)) for a, b in moves]
    else:
        nums = [pipe.send(CMD_RENAME, encode(a), encode(b)) for a, b in moves]
    results: list[StatusError | None] = []
    for num in nums:
        try:
            pipe.status(num)
            results.append(None)
        except StatusError as exc:
            results.append(exc)
    return results


def remove_group(sftp: paramiko.SFTPClient, paths: list[str]) -> None:
    """Delete every path at once; refusals are ignored (left-over temp files)."""
    pipe = Pipeline(sftp)
    for num in [pipe.send(CMD_REMOVE, encode(p)) for p in paths]:
        try:
            pipe.status(num)
        except StatusError:
            continue
