"""What the location tests share: a fixed time, writing bytes, write jobs made of bytes."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import BinaryIO

from app.locations.base import FileMeta, Location, WriteJob, WriteOutcome

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


def write_group(loc: Location, jobs: Sequence[WriteJob]) -> list[WriteOutcome]:
    """Write ``jobs`` as one group in a batch of their own, as the engine's copies do."""
    with loc.batch():
        return loc.write_many(jobs)


def write_files(
    loc: Location, files: Mapping[str, bytes], first_s: int = 1_600_000_000
) -> list[FileMeta]:
    """Write ``files`` as one group, the n-th with time ``first_s + n``; every one must land."""
    jobs = [job(p, data, first_s + i) for i, (p, data) in enumerate(files.items())]
    outcomes = write_group(loc, jobs)
    landed = [o for o in outcomes if isinstance(o, FileMeta)]
    assert len(landed) == len(outcomes), outcomes
    return landed
