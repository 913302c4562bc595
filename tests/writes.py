"""What the location tests share: a fixed time, writing bytes, a write job made of bytes."""

from __future__ import annotations

import contextlib
import io
from typing import BinaryIO

from app.locations.base import FileMeta, Location, WriteJob

NS = 1_000_000_000
#: A fixed modification time in whole seconds (November 2023).
T0 = 1_700_000_000 * NS


def write_bytes(loc: Location, path: str, data: bytes, mtime_ns: int = T0) -> FileMeta:
    """Write ``data`` to ``path`` in a batch of its own, as the engine writes."""
    with loc.batch():
        return loc.write(path, io.BytesIO(data), mtime_ns)


def job(
    path: str, data: bytes, mtime_s: int = 1_600_000_000, expected: FileMeta | None = None
) -> WriteJob:
    """A write job whose source is ``data`` in memory."""

    def source() -> contextlib.AbstractContextManager[BinaryIO]:
        return contextlib.nullcontext(io.BytesIO(data))

    return WriteJob(path, source, mtime_s * NS, expected)
