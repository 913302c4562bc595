"""Stopping in the middle of a sync: a stop request is honoured between paths and chunks.

A full sync of 50,000 files takes a minute; a service manager sends SIGTERM and kills the
process a few seconds later. So the syncer checks the engine's stop flag before each path, and
every stream it copies from checks it before each chunk: a stop in the middle of a long copy
raises :class:`SyncStopped` out of the location's ``write``, which removes its temp file like
after any failed read. What landed before is in the index (committed when the engine stops),
so the next start continues where this one stopped.
"""

from __future__ import annotations

import threading
from typing import Any, BinaryIO, cast


class SyncStopped(Exception):
    """The engine was asked to stop; the sync in progress ends early (not an error)."""


class StopAwareReader:
    """A read-only stream that raises :class:`SyncStopped` once ``stopping`` is set.

    It wraps a location's ``open_read`` stream and passes everything else through, so the
    locations' copy loops need no stop logic of their own.
    """

    def __init__(self, raw: BinaryIO, stopping: threading.Event) -> None:
        self._raw = raw
        self._stopping = stopping

    def _check(self) -> None:
        if self._stopping.is_set():
            raise SyncStopped("stopping")

    def read(self, size: int = -1) -> bytes:
        """Read like the wrapped stream, unless a stop was requested."""
        self._check()
        return self._raw.read(size)

    def readinto(self, buffer: memoryview | bytearray) -> int:
        """Read into ``buffer`` like the wrapped stream, unless a stop was requested."""
        self._check()
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            return cast(int, readinto(buffer))
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def stop_aware(raw: BinaryIO, stopping: threading.Event | None) -> BinaryIO:
    """``raw``, made to raise :class:`SyncStopped` between chunks once ``stopping`` is set."""
    if stopping is None:
        return raw
    return cast(BinaryIO, StopAwareReader(raw, stopping))
