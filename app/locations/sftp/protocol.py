"""SFTP requests sent many at a time on paramiko's client, every reply checked.

paramiko's public file API waits for one reply per request, drops the replies of pipelined
writes (a failed write would go unnoticed) and reads ahead in a thread of its own. Here a
:class:`Pipeline` puts any number of requests in flight on the client's channel and collects
their replies by request number, so an upload is three round trips whatever its size (open;
writes + set time + close + stat; rename), a download keeps a window of reads in flight, and
``stat`` of many files costs one round trip. The requests go out together and the replies
are read in bulk (:mod:`.wire`), with paramiko's request numbers and reply table.

Status replies become :class:`StatusError` (an ``OSError`` with ``errno.ENOENT`` for "no such
file" and ``errno.EACCES`` for "permission denied", as paramiko maps them) so callers can tell
a refusal from a broken connection, which raises paramiko's ``SSHException`` or a timeout.
"""

from __future__ import annotations

import contextlib
import errno
import io
import stat
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO, cast

import paramiko
from paramiko.message import Message
from paramiko.sftp import (
    CMD_ATTRS,
    CMD_CLOSE,
    CMD_DATA,
    CMD_EXTENDED,
    CMD_FSETSTAT,
    CMD_FSTAT,
    CMD_HANDLE,
    CMD_LSTAT,
    CMD_MKDIR,
    CMD_NAME,
    CMD_OPEN,
    CMD_OPENDIR,
    CMD_READ,
    CMD_READDIR,
    CMD_REMOVE,
    CMD_RENAME,
    CMD_RMDIR,
    CMD_STATUS,
    CMD_WRITE,
    SFTP_EOF,
    SFTP_FLAG_APPEND,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_READ,
    SFTP_FLAG_TRUNC,
    SFTP_FLAG_WRITE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
    int64,
)

from app.locations.sftp import wire

#: Bytes per READ/WRITE request: what every server accepts (OpenSSH, rclone, paramiko's own).
REQUEST_SIZE = 32 * 1024
#: Requests of one upload in flight at once (2 MiB): enough to fill a fast link.
WINDOW = 64
#: Bytes per READ: OpenSSH serves up to 255 KiB in one reply (fewer replies, less per-byte
#: work here); a server that answers with less is asked again for the rest.
READ_SIZE = 255 * 1024
#: READs of one download in flight at once (about 4 MiB).
READ_WINDOW = 16
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


class SourceFailed(Exception):
    """Reading the upload's source failed; ``cause`` is that error, re-raised by the caller."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


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
                    _check_names_end(kind, msg)
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
                _check_names_end(kind, msg)
    finally:
        pipe.send(CMD_CLOSE, handle)  # its reply is read with the next request
        pipe.flush()
    return entries


def _check_names_end(kind: int, msg: Message) -> None:
    """A READDIR reply that is not names: EOF ends the folder, anything else is an error."""
    if kind == CMD_STATUS:
        code = msg.get_int()
        if code == SFTP_EOF:
            return
        raise StatusError(code, msg.get_string().decode("utf-8", "replace"))
    raise paramiko.SSHException(f"unexpected SFTP reply type {kind} to READDIR")


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


def upload(
    sftp: paramiko.SFTPClient, path: str, source: BinaryIO, mtime_s: int, buffer: bytearray
) -> paramiko.SFTPAttributes:
    """Write ``source`` to a new file ``path``, stamped ``mtime_s``; return its attributes.

    Writes go out :data:`WINDOW` at a time and every reply is checked, so a file that did not
    fully land raises (:class:`StatusError`) instead of being renamed into place. A failing
    ``source`` raises :class:`SourceFailed` (the half-written file is the caller's to remove).
    """
    pipe = Pipeline(sftp)
    flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC
    handle = pipe.handle(pipe.send(CMD_OPEN, encode(path), flags, paramiko.SFTPAttributes()))
    closed = False
    try:
        in_flight: deque[int] = deque()
        offset = 0
        view = memoryview(buffer)
        readinto = getattr(source, "readinto", None) or (lambda v: _read(source, v))
        while True:
            try:
                count = readinto(view)
            except BaseException as exc:
                raise SourceFailed(exc) from exc
            if not count:
                break
            for start in range(0, count, REQUEST_SIZE):
                chunk = bytes(view[start : min(count, start + REQUEST_SIZE)])
                in_flight.append(pipe.send(CMD_WRITE, handle, int64(offset), chunk))
                offset += len(chunk)
                if len(in_flight) >= WINDOW:  # half the window answered, half refilled:
                    while len(in_flight) > WINDOW // 2:  # writes go out in full SSH packets
                        pipe.status(in_flight.popleft())
        times = paramiko.SFTPAttributes()
        times.st_atime = times.st_mtime = mtime_s
        in_flight.append(pipe.send(CMD_FSETSTAT, handle, times))
        close = pipe.send(CMD_CLOSE, handle)
        closed = True
        listed = pipe.send(CMD_LSTAT, encode(path))
        for num in in_flight:
            pipe.status(num)
        pipe.status(close)
        attrs = pipe.attrs(listed)
    finally:
        if not closed:
            with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                pipe.status(pipe.send(CMD_CLOSE, handle))
    if attrs is None:
        raise StatusError(SFTP_NO_SUCH_FILE, "the uploaded file vanished")
    if attrs.st_size != offset:
        raise StatusError(-1, f"the server holds {attrs.st_size} of {offset} bytes sent")
    return attrs


def _read(source: BinaryIO, view: memoryview) -> int:
    data = source.read(len(view))
    view[: len(data)] = data
    return len(data)


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


def append(sftp: paramiko.SFTPClient, path: str, data: bytes) -> None:
    """Append ``data`` to ``path`` (created if missing), writing at its listed end.

    The offset is the file's size as well as the append flag, for servers that ignore the
    flag; only one writer ever appends to a given file.
    """
    pipe = Pipeline(sftp)
    listed = pipe.send(CMD_LSTAT, encode(path))
    flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_APPEND
    opened = pipe.send(CMD_OPEN, encode(path), flags, paramiko.SFTPAttributes())
    attrs = pipe.attrs(listed)
    handle = pipe.handle(opened)
    offset = attrs.st_size or 0 if attrs is not None else 0
    writes = [
        pipe.send(CMD_WRITE, handle, int64(offset + start), data[start : start + REQUEST_SIZE])
        for start in range(0, len(data), REQUEST_SIZE)
    ]
    close = pipe.send(CMD_CLOSE, handle)
    for num in [*writes, close]:
        pipe.status(num)


def read_from(sftp: paramiko.SFTPClient, path: str, offset: int) -> bytes:
    """The bytes of ``path`` from ``offset`` to its end (StatusError ENOENT if it is gone)."""
    stream = Download(sftp, path, _unchanged)
    stream.seek_to(offset)
    try:
        return io.BufferedReader(stream).read()
    finally:
        stream.close()


def _unchanged(exc: BaseException) -> Exception:
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


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


class Download(io.RawIOBase):
    """The bytes of one remote file, read with a window of READ requests in flight.

    The file's size (FSTAT, sent with the first READ) bounds the requests, so a small file
    costs two round trips (open; read + size) and no request is wasted past its end.
    ``translate`` turns a connection failure into the location's error: a download cut short
    raises instead of looking like a shorter file.
    """

    def __init__(
        self,
        sftp: paramiko.SFTPClient,
        path: str,
        translate: Callable[[BaseException], Exception],
    ) -> None:
        super().__init__()
        self._pipe = Pipeline(sftp)
        self._translate = translate
        self._handle = self._pipe.handle(
            self._pipe.send(CMD_OPEN, encode(path), SFTP_FLAG_READ, paramiko.SFTPAttributes())
        )
        #: (request number, offset, length) of the READs in flight, in file order.
        self._queue: deque[tuple[int, int, int]] = deque()
        self._next = 0
        self._size: int | None = None
        self._started = False
        self._eof = False
        self._leftover = b""
        self.complete = False

    def readable(self) -> bool:
        """A download is read-only."""
        return True

    def seek_to(self, offset: int) -> None:
        """Start reading at ``offset`` (before the first read only)."""
        self._next = offset

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Fill ``buffer`` with the next bytes; 0 only once the whole file was read."""
        try:
            if not self._leftover:
                self._leftover = self._next_chunk()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._translate(exc) from None
        count = min(len(buffer), len(self._leftover))
        buffer[:count] = self._leftover[:count]
        self._leftover = self._leftover[count:]
        return count

    def _next_chunk(self) -> bytes:
        if self._eof:
            return b""
        if not self._started:
            self._started = True
            size = self._pipe.send(CMD_FSTAT, self._handle)
            self._request(READ_SIZE)
            attrs = self._pipe.attrs(size)
            self._size = attrs.st_size if attrs is not None else None
        self._fill()
        if not self._queue:
            return self._end()
        num, offset, length = self._queue.popleft()
        kind, msg = self._pipe.reply(num)
        if kind != CMD_DATA:
            _check_names_end(kind, msg)  # EOF returns, anything else raises
            return self._end()
        data = msg.get_string()
        if not data:
            return self._end()
        if len(data) < length:  # a short read: the rest of that range is asked for first
            rest = offset + len(data)
            if self._size is None or rest < self._size:
                num = self._pipe.send(CMD_READ, self._handle, int64(rest), length - len(data))
                self._queue.appendleft((num, rest, length - len(data)))
        return data

    def _request(self, length: int) -> None:
        """Send a READ of ``length`` bytes from where the last one ended."""
        num = self._pipe.send(CMD_READ, self._handle, int64(self._next), length)
        self._queue.append((num, self._next, length))
        self._next += length

    def _fill(self) -> None:
        """Keep :data:`READ_WINDOW` reads in flight, none past the size the server reported."""
        while len(self._queue) < READ_WINDOW:
            if self._size is None:
                self._request(READ_SIZE)
            elif self._next < self._size:
                self._request(min(READ_SIZE, self._size - self._next))
            else:
                return

    def _end(self) -> bytes:
        self._eof = True
        self.complete = True
        self._queue.clear()
        return b""

    def close(self) -> None:
        """Close the remote handle (without waiting for a connection that may be dead)."""
        if not self.closed:
            with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                self._pipe.send(CMD_CLOSE, self._handle)
                self._pipe.flush()
        super().close()
