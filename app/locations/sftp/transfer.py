"""A file's bytes over SFTP: uploads and downloads with a window of requests in flight.

Built on :class:`~app.locations.sftp.protocol.Pipeline`: an upload is three round trips
whatever its size (open; writes + set time + close + stat; rename is the caller's), every
WRITE's reply is checked, and the file's listed size must match what was sent; a download
(:class:`Download`) keeps a window of READs in flight, bounded by the file's size; ``append``
adds to the end of a file (the hub journal's lines).
"""

from __future__ import annotations

import contextlib
import io
from collections import deque
from collections.abc import Callable
from typing import BinaryIO

import paramiko
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_DATA,
    CMD_FSETSTAT,
    CMD_FSTAT,
    CMD_LSTAT,
    CMD_OPEN,
    CMD_READ,
    CMD_WRITE,
    SFTP_FLAG_APPEND,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_READ,
    SFTP_FLAG_TRUNC,
    SFTP_FLAG_WRITE,
    SFTP_NO_SUCH_FILE,
    int64,
)

from app.locations.sftp.protocol import REQUEST_SIZE, Pipeline, StatusError, check_end, encode

#: Requests of one upload in flight at once (2 MiB): enough to fill a fast link.
WINDOW = 64
#: Bytes per READ: OpenSSH serves up to 255 KiB in one reply (fewer replies, less per-byte
#: work here); a server that answers with less is asked again for the rest.
READ_SIZE = 255 * 1024
#: READs of one download in flight at once (about 4 MiB).
READ_WINDOW = 16


class SourceFailed(Exception):
    """Reading the upload's source failed; ``cause`` is that error, re-raised by the caller."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


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
            check_end(kind, msg)  # EOF returns, anything else raises
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
