"""An in-memory Location for running many property-test examples through the real engine.

It implements the same interface as folders (and passes the same planner), but holds files in
a dict, so a hypothesis example costs microseconds instead of disk and watcher latency.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import BinaryIO

from app.errors import FileVanished
from app.locations.base import Capabilities, FileMeta, Listing, Location, check_relpath


class MemoryLocation(Location):
    """Files as ``path -> (bytes, mtime_ns)``; no watcher (tests sync explicitly)."""

    kind = "memory"
    capabilities = Capabilities(1, can_set_mtime=True, can_rename=True, native_events=False)

    def __init__(self, name: str) -> None:
        self._name = name
        self.files: dict[str, tuple[bytes, int]] = {}

    @property
    def key(self) -> str:
        return f"memory:{self._name}"

    @property
    def label(self) -> str:
        return self._name

    def scan(self, prefix: str = "") -> Listing:
        start = prefix + "/" if prefix else ""
        return {p: FileMeta(len(d), m) for p, (d, m) in self.files.items() if p.startswith(start)}

    def stat(self, path: str) -> FileMeta | None:
        entry = self.files.get(path)
        return FileMeta(len(entry[0]), entry[1]) if entry else None

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        if path not in self.files:
            raise FileVanished("gone", location=self.name, path=path)
        yield io.BytesIO(self.files[path][0])

    def write(self, path: str, source: BinaryIO, mtime_ns: int) -> FileMeta:
        self.files[check_relpath(path)] = (source.read(), mtime_ns)
        return self.stat(path)  # type: ignore[return-value]

    def delete(self, path: str) -> None:
        self.files.pop(path, None)

    def rename(self, src: str, dst: str) -> FileMeta:
        if src not in self.files:
            raise FileVanished("gone", location=self.name, path=src)
        self.files[check_relpath(dst)] = self.files.pop(src)
        return self.stat(dst)  # type: ignore[return-value]
