"""SFTP requests sent many at a time on paramiko's client, every reply checked.

paramiko's public file API waits for one reply per request, drops the replies of pipelined
writes (a failed write would go unnoticed) and reads ahead in a thread of its own. Here a
:class:`Pipeline` puts any number of requests in flight on the client's channel and collects
their replies by request number, so ``stat`` of many files costs one round trip and a folder
of one batch is listed in one. The requests go out together and the replies are read in bulk
(:mod:`.wire`), with paramiko's request numbers and reply table. This module holds the
pipeline and the requests on names (list, stat, make, remove, rename); a file's bytes go
through it in :mod:`.transfer` (uploads and downloads with a window of requests in flight).

Status replies become :class:`StatusError` (an ``OSError`` with ``errno.ENOENT`` for "no such
file" and ``errno.EACCES`` for "permission denied", as paramiko maps them) so callers can tell
a refusal from a broken connection, which raises paramiko's ``SSHException`` or a timeout.
"""

from __future__ import annotations

import contextlib
import errno
import stat
from collections import deque
from collections.abc import Iterable
from typing import Any, cast

import paramiko
from paramiko.message import Message
from paramiko.sftp import (
    CMD_ATTRS,
    CMD_CLOSE,
    CMD_EXTENDED,
    CMD_HANDLE,
    CMD_LSTAT,
    CMD_MKDIR,
    CMD_NAME,
    CMD_OPENDIR,
    CMD_READDIR,
    CMD_REMOVE,
    CMD_RENAME,
    CMD_RMDIR,
    CMD_STATUS,
    SFTP_EOF,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
)

from app.locations.sftp import wire

#: Bytes per READ/WRITE request: what every server accepts (OpenSSH, rclone, paramiko's own).
REQUEST_SIZE = 32 * 1024
POSIX_RENAME = "posix-rename@openssh.com"


class StatusError(OSError):
    """A status reply other than OK: the server refused one request (``code`` says why)."""

    def __init__(self, code: int, text: str) -> None:
        number = {SFTP_NO_SUCH_FILE: errno.ENOENT, SFTP_PERMISSION_DENIED: errno.EACCES}.get(code)
        if number is None:
            super().__init__(text or f"SFTP status {code}")
        else:
            super().__init__(number, text)
        self.code = code


#: Everything one exchange with the server can raise: refusals and connection trouble.
SFTP_ERRORS: tuple[type[BaseException], ...] = (paramiko.SSHException, EOFError, OSError)


def is_not_found(exc: BaseException) -> bool:
    """True for the server's "no such file" (ours or paramiko's own mapping of it)."""
    return isinstance(exc, OSError) and exc.errno == errno.ENOENT


def encode(path: str) -> bytes:
    """A path as SFTP carries it: UTF-8 bytes."""
    return path.encode("utf-8")


class Pipeline:
    """Requests in flight on one SFTP client, replies kept by request number until asked for.

    paramiko hands every reply whose request named this object to :meth:`_async_response`;
    replies nobody asks for (a transfer given up half-way) are simply never read from here.
    """

    def __init__(self, sftp: paramiko.SFTPClient) -> None:
        self._sftp = sftp
        self._replies: dict[int, tuple[int, Message]] = {}

    def _async_response(self, kind: int, msg: Message, num: int) -> None:
        self._replies[num] = (kind, msg)

    def send(self, command: int, *args: object) -> int:
        """Queue one request (it goes out with the next wait or :meth:`flush`); its number."""
        return wire.send(self._sftp, self, command, args)

    def flush(self) -> None:
        """Send the queued requests now (one whose reply nobody will wait for: a CLOSE)."""
        wire.flush(self._sftp)

    def reply(self, num: int) -> tuple[int, Message]:
        """Wait for the reply to request ``num``: (type, message)."""
        while num not in self._replies:
            wire.read_reply(self._sftp)
        return self._replies.pop(num)

    def status(self, num: int) -> None:
        """Wait for a status reply and raise :class:`StatusError` unless it is OK."""
        kind, msg = self.reply(num)
        _check_status(kind, msg)

    def handle(self, num: int) -> bytes:
        """Wait for an OPEN/OPENDIR reply: the handle."""
        kind, msg = self.reply(num)
        if kind != CMD_HANDLE:
            _check_status(kind, msg, expected="a handle")
        return msg.get_binary()

    def attrs(self, num: int) -> paramiko.SFTPAttributes | None:
        """Wait for a (L)STAT reply: the attributes, None for "no such file"."""
        kind, msg = self.reply(num)
        if kind == CMD_ATTRS:
            return cast(paramiko.SFTPAttributes, _from_msg(msg))
        try:
            _check_status(kind, msg, expected="attributes")
        except StatusError as exc:
            if exc.code == SFTP_NO_SUCH_FILE:
                return None
            raise
        raise StatusError(-1, "the server answered a stat with OK and no attributes")


def _check_status(kind: int, msg: Message, expected: str = "") -> None:
    if kind != CMD_STATUS:
        raise paramiko.SSHException(f"unexpected SFTP reply type {kind} (expected {expected})")
    code = msg.get_int()
    if code == SFTP_OK and not expected:
        return
    text = msg.get_string().decode("utf-8", "replace")
    raise StatusError(code, text)


def _from_msg(msg: Message, filename: str | None = None) -> Any:
    return cast(Any, paramiko.SFTPAttributes)._from_msg(msg, filename)


def list_dir(sftp: paramiko.SFTPClient, path: str) -> list[paramiko.SFTPAttributes]:
    """Every entry of folder ``path`` but ``.`` and ``..``, with attributes as the server lists
    them (not following links). Names that are not UTF-8 keep their bytes as surrogates."""
    pipe = Pipeline(sftp)
    handle = pipe.handle(pipe.send(CMD_OPENDIR, encode(path)))
    entries: list[paramiko.SFTPAttributes] = []
    try:
        # Two READDIRs in flight: a folder of one batch is read in one round trip.
        pending = deque([pipe.send(CMD_READDIR, handle), pipe.send(CMD_READDIR, handle)])
        while pending:
            kind, msg = pipe.reply(pending.popleft())
            if kind != CMD_NAME:
                with contextlib.suppress(EOFError):
                    check_end(kind, msg)
                break
            for _ in range(msg.get_int()):
                name = msg.get_string().decode("utf-8", "surrogateescape")
                msg.get_string()  # the ls -l style "longname": not needed
                attrs = _from_msg(msg, name)
                if name not in (".", ".."):
                    entries.append(attrs)
            pending.append(pipe.send(CMD_READDIR, handle))
        for num in pending:  # EOF already seen: the extra READDIR's reply is EOF too
            with contextlib.suppress(EOFError, StatusError):
                kind, msg = pipe.reply(num)
                check_end(kind, msg)
    finally:
        pipe.send(CMD_CLOSE, handle)  # its reply is read with the next request
        pipe.flush()
    return entries


def check_end(kind: int, msg: Message) -> None:
    """A READDIR or READ reply that is not names or data: EOF ends the folder or file,
    anything else is an error."""
    if kind == CMD_STATUS:
        code = msg.get_int()
        if code == SFTP_EOF:
            return
        raise StatusError(code, msg.get_string().decode("utf-8", "replace"))
    raise paramiko.SSHException(f"unexpected SFTP reply type {kind} (expected names, data or EOF)")


def lstat_many(
    sftp: paramiko.SFTPClient, paths: Iterable[str]
) -> list[paramiko.SFTPAttributes | None]:
    """LSTAT every path in one round trip; None where there is nothing."""
    pipe = Pipeline(sftp)
    nums = [pipe.send(CMD_LSTAT, encode(path)) for path in paths]
    return [pipe.attrs(num) for num in nums]


def is_file(attrs: paramiko.SFTPAttributes | None) -> bool:
    """A regular file (not a folder, link or device)."""
    return attrs is not None and attrs.st_mode is not None and stat.S_ISREG(attrs.st_mode)


def mkdir(sftp: paramiko.SFTPClient, path: str) -> None:
    """Create folder ``path`` (StatusError if it exists or cannot be made)."""
    pipe = Pipeline(sftp)
    pipe.status(pipe.send(CMD_MKDIR, encode(path), paramiko.SFTPAttributes()))


def remove(sftp: paramiko.SFTPClient, path: str) -> None:
    """Delete file ``path`` (StatusError with ENOENT if there is none)."""
    pipe = Pipeline(sftp)
    pipe.status(pipe.send(CMD_REMOVE, encode(path)))


def rmdir(sftp: paramiko.SFTPClient, path: str) -> None:
    """Remove folder ``path``; the server refuses one that is not empty (StatusError)."""
    pipe = Pipeline(sftp)
    pipe.status(pipe.send(CMD_RMDIR, encode(path)))


def rename(sftp: paramiko.SFTPClient, src: str, dst: str, *, posix: bool) -> None:
    """Rename ``src`` onto ``dst``: atomically replacing it with ``posix-rename@openssh.com``,
    else with plain RENAME (which most servers refuse onto an existing file)."""
    pipe = Pipeline(sftp)
    if posix:
        pipe.status(pipe.send(CMD_EXTENDED, POSIX_RENAME, encode(src), encode(dst)))
    else:
        pipe.status(pipe.send(CMD_RENAME, encode(src), encode(dst)))


def unsupported(exc: BaseException) -> bool:
    """True for "operation unsupported" (a server without an extension)."""
    return isinstance(exc, StatusError) and exc.code == SFTP_OP_UNSUPPORTED
