"""One copy of a file between two locations, as the engine hands it to the target.

The target's worker runs the copy and opens the source there too, so the engine thread never
blocks on either side. Whether the source (rather than the target) failed is remembered per
copy, since that concerns every target of the path, and an error is blamed on the location it
concerns. :func:`same_bytes` compares a path's bytes in two locations the same way.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

from app.engine.keepaside import streams_equal
from app.engine.stopping import SyncStopped, stop_aware
from app.errors import FileSyncError, FileVanished
from app.locations.base import FileMeta, LocalRoot, Location, WriteJob


class SourceStream(io.RawIOBase):
    """The source's stream, remembering whether reading it failed (rather than the target)."""

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner
        self.failed: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._inner.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._inner.read(-1 if size is None else size)
        except BaseException as exc:
            self.failed = exc
            raise

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class Copy:
    """One copy of ``path`` from a source into a target, run on the target's worker.

    The source is opened there too, so the engine thread never blocks on either side; whether
    the source (rather than the target) failed is remembered, since that concerns every target.
    """

    def __init__(
        self,
        source: Location,
        target: Location,
        path: str,
        mtime_ns: int,
        expected: FileMeta | None,
        *,
        stopping: threading.Event | None,
    ) -> None:
        self.source, self.target, self.path = source, target, path
        self.mtime_ns, self.expected = mtime_ns, expected
        self.stopping = stopping
        self.opened = False
        self.stream: SourceStream | None = None

    def source_failed(self) -> bool:
        """True when opening or reading the source raised."""
        return not self.opened or (self.stream is not None and self.stream.failed is not None)

    @contextlib.contextmanager
    def open_source(self) -> Iterator[BinaryIO]:
        """The source's stream, watched for failures and for a stop (on the copying thread).

        An error while the source fails is the source's (its key), though the target's
        thread runs the copy.
        """
        self.opened, self.stream = False, None  # a retry after source_at: this one counts
        try:
            with self.source.open_read(self.path) as raw:
                self.opened = True
                self.stream = SourceStream(stop_aware(raw, self.stopping))
                yield cast(BinaryIO, self.stream)
        except FileSyncError as exc:
            if self.source_failed():
                blame(exc, self.source)
            raise

    def source_read(self) -> None:
        """The target read the source whole beneath its root (``WriteJob.source_read``)."""
        self.opened, self.stream = True, None

    @contextlib.contextmanager
    def source_at(self) -> Iterator[tuple[int, str]]:
        """The source's folder and name (see ``WriteJob.source_at``), with the stop check its
        stream would make, and the same blame."""
        if self.stopping is not None and self.stopping.is_set():
            raise SyncStopped("stopping")
        try:
            with self.source.local_file(self.path) as at:
                self.opened, self.stream = True, None
                yield at
        except FileSyncError as exc:
            if self.source_failed():
                blame(exc, self.source)
            raise

    def job(self, size: int, source_root: LocalRoot | None) -> WriteJob:
        """This copy as one job of the target's ``write_many``. ``source_root``: the source's
        root folder if it is a folder on this computer (the target may then read the file
        beneath it with plain system calls, without a stream)."""
        local = source_root is not None
        return WriteJob(
            self.path,
            self.open_source,
            self.mtime_ns,
            self.expected,
            self.source_at if local else None,
            size,
            source_root,
            self.source_read if local else None,
        )

    def run(self) -> FileMeta:
        with self.open_source() as data:
            return self.target.guarded_write(self.path, data, self.mtime_ns, self.expected)


def blame(exc: FileSyncError, location: Location) -> None:
    """Say which location ``exc`` concerns (its key), unless that is known already."""
    exc.key = exc.key or location.key


def same_bytes(a: Location, b: Location, path: str, stopping: threading.Event | None) -> bool:
    """Whether ``path`` holds the same bytes in ``a`` and ``b``; an error names its side."""
    side = a
    try:
        with a.open_read(path) as fa:
            side = b
            with b.open_read(path) as fb:
                stream_a = SourceStream(stop_aware(fa, stopping))
                try:
                    return streams_equal(cast(BinaryIO, stream_a), fb)
                finally:
                    side = a if stream_a.failed is not None else b
    except FileVanished:
        return False
    except FileSyncError as exc:
        blame(exc, side)
        raise
