"""A group of small downloads in two round trips, for :meth:`SftpLocation.read_ahead`.

One file at a time a download costs two round trips (open; size + reads). When the engine
copies a group of files from an SFTP location, every small file of the group is opened at
once, then every file's size (FSTAT), reads and close go out together: two round trips for
the whole group. Each reply is still checked per file; a file whose replies are anything but
"here are all its bytes" is left out, and is then read on its own as before.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import paramiko
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_DATA,
    CMD_FSTAT,
    CMD_OPEN,
    CMD_READ,
    CMD_STATUS,
    SFTP_EOF,
    SFTP_FLAG_READ,
    int64,
)

from app.errors import FileChanged, FileSyncError, FileVanished, UnsafePath
from app.locations.base import FileMeta
from app.locations.sftp.protocol import (
    REQUEST_SIZE,
    Pipeline,
    StatusError,
    encode,
    is_file,
    is_not_found,
)

if TYPE_CHECKING:
    from app.locations.sftp.remote import SftpRemote


#: Files up to this size are read ahead (whole, into memory); bigger ones stream on their own.
FETCH_FILE_LIMIT = 256 * 1024


@dataclass
class GroupGet:
    """One small file of a group: where it is, how big the plan says it is, what came back.

    ``attrs`` is what FSTAT said of the open file; ``data`` its bytes from start to end of
    file, None if the replies did not add up to that. ``error`` is the server's refusal to
    open it (no such file, say).
    """

    path: str
    size: int
    attrs: paramiko.SFTPAttributes | None = None
    data: bytes | None = None
    error: StatusError | None = None


def download_group(sftp: paramiko.SFTPClient, gets: list[GroupGet]) -> None:
    """Open every file, then ask for each one's attributes, bytes and close all at once.

    Reads are :data:`REQUEST_SIZE` each, which every server answers in full (rclone's serves
    no more per read); the planned size decides how many, one more asks for the end of file,
    so a file that grew is seen as such.
    """
    pipe = Pipeline(sftp)
    opens = [
        pipe.send(CMD_OPEN, encode(g.path), SFTP_FLAG_READ, paramiko.SFTPAttributes()) for g in gets
    ]
    handles = [_handle(pipe, get, num) for get, num in zip(gets, opens, strict=True)]
    sent: list[tuple[GroupGet, int, list[int], int]] = []
    for get, handle in zip(gets, handles, strict=True):
        if handle is None:
            continue
        fstat = pipe.send(CMD_FSTAT, handle)
        reads = [
            pipe.send(CMD_READ, handle, int64(start), REQUEST_SIZE)
            for start in range(0, get.size + 1, REQUEST_SIZE)
        ]
        sent.append((get, fstat, reads, pipe.send(CMD_CLOSE, handle)))
    for get, fstat, reads, close in sent:
        try:
            get.attrs = pipe.attrs(fstat)
        except StatusError:
            get.attrs = None
        get.data = _collect(pipe, get.size, reads)
        try:
            pipe.status(close)
        except StatusError:
            continue  # a read handle: nothing was written that its close could lose


def _handle(pipe: Pipeline, get: GroupGet, num: int) -> bytes | None:
    """The handle an OPEN got; None (its refusal in ``get.error``) if there is none.

    Every handle is taken before anything else is sent, so the next requests of the whole
    group go out together.
    """
    try:
        return pipe.handle(num)
    except StatusError as exc:
        get.error = exc
        return None


def _collect(pipe: Pipeline, size: int, reads: list[int]) -> bytes | None:
    """A file's bytes from its read replies, or None unless they run from start to end of file.

    Every reply is taken off the pipe, whatever came before it, so none is left behind.
    """
    chunks: list[bytes] = []
    whole = True
    ended = False
    expected = 0
    for start, num in zip(range(0, size + 1, REQUEST_SIZE), reads, strict=True):
        kind, msg = pipe.reply(num)
        if ended or not whole:
            continue
        if kind != CMD_DATA:
            ended = True
            whole = start == expected and kind == CMD_STATUS and msg.get_int() == SFTP_EOF
            continue
        data = msg.get_string()
        if start != expected or (len(data) < REQUEST_SIZE and start + REQUEST_SIZE <= size):
            whole = False  # a short read in the middle: the file is read on its own instead
            continue
        chunks.append(data)
        expected = start + len(data)
        if len(data) < REQUEST_SIZE:
            ended = True
    return b"".join(chunks) if whole and ended else None


class SftpReadAhead:
    """:meth:`read_ahead` for an SFTP location (mixed into ``SftpLocation``).

    What a group fetched is kept per thread (the one copying the group) until the block
    exits; :meth:`_read_early` hands each file out once, to ``open_read``.
    """

    _ahead: threading.local
    #: Files ``open_read`` served from a group's read-ahead (for tests and benchmarks).
    read_ahead_served = 0

    #: The session, names and versions (the location's).
    _remote: SftpRemote

    @contextlib.contextmanager
    def read_ahead(self, wanted: Sequence[tuple[str, FileMeta]]) -> Iterator[None]:
        """Fetch the small files of ``wanted`` in two round trips (see ``Location.read_ahead``).

        A connection failure fetches nothing: every file is then opened on its own, which
        reports it as it always did.
        """
        small: list[tuple[str, FileMeta]] = []
        for path, planned in wanted:
            if planned.size <= FETCH_FILE_LIMIT:
                with contextlib.suppress(UnsafePath):
                    small.append((self._remote.check(path), planned))
        fetched: dict[str, bytes | FileSyncError] = {}
        if small:
            with contextlib.suppress(FileSyncError):
                fetched = self._remote.call("download of a group", lambda s: self._fetch(s, small))
        before: dict[str, bytes | FileSyncError] | None = getattr(self._ahead, "files", None)
        self._ahead.files = fetched
        try:
            yield
        finally:
            self._ahead.files = before

    def _fetch(
        self, sftp: paramiko.SFTPClient, small: list[tuple[str, FileMeta]]
    ) -> dict[str, bytes | FileSyncError]:
        gets = [GroupGet(self._remote.abs(path), planned.size) for path, planned in small]
        download_group(sftp, gets)
        fetched: dict[str, bytes | FileSyncError] = {}
        for (path, planned), get in zip(small, gets, strict=True):
            if get.error is not None:
                if is_not_found(get.error):
                    fetched[path] = FileVanished(
                        "the file is gone from the server", location=self._remote.name, path=path
                    )
                continue  # any other refusal: opened on its own, which says why
            if get.attrs is None or not is_file(get.attrs):
                continue
            now = self._remote.meta(path, get.attrs)
            if not _same_version(now, planned):
                fetched[path] = FileChanged(
                    "changed on the server since it was listed; will retry",
                    location=self._remote.name,
                    path=path,
                )
            elif get.data is not None and len(get.data) == now.size:
                fetched[path] = get.data
        return fetched

    def _read_early(self, path: str) -> BinaryIO | None:
        """``path``'s bytes if this thread's group fetched them (once); its error, raised."""
        files: dict[str, bytes | FileSyncError] | None = getattr(self._ahead, "files", None)
        found = files.pop(path, None) if files else None
        if found is None:
            return None
        if isinstance(found, FileSyncError):
            raise found
        self.read_ahead_served += 1
        return io.BytesIO(found)


def _same_version(now: FileMeta, planned: FileMeta) -> bool:
    """Size and time equal, and the tag too unless either is a racy one (negative).

    Journal tags are CRC-32 values (never negative); a racy tag only says "look again".
    """
    return now.same_version(planned) and (min(now.tag, planned.tag) < 0 or now.tag == planned.tag)
