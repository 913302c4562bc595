"""The plain values the versions API returns, each with the JSON the dashboard sends."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

NS = 1_000_000_000


def version_id(*parts: str) -> str:
    """A stable id for one version: the same location and name give the same id every time."""
    raw = "\0".join(parts).encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()[:20]


def text(path: str) -> str:
    """A path as JSON can carry it: bytes that are not UTF-8 become U+FFFD (ids stay exact)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass(frozen=True)
class TrashItem:
    """One version in a location's trash. Times are seconds since the epoch (UTC).

    ``location`` is the location's key; ``reason`` is ``deleted`` or ``overwritten``;
    ``mtime`` is the version's own modification time, ``trashed_at`` when it was trashed.
    """

    id: str
    location: str
    path: str
    size: int
    mtime: float
    trashed_at: float
    reason: str
    #: The store's own name for it (not part of the JSON).
    entry: str = ""
    mtime_ns: int = 0

    def as_json(self) -> dict[str, Any]:
        """The issue's fields: id, location, path, size, mtime, trashed_at, reason."""
        return {
            "id": self.id,
            "location": self.location,
            "path": text(self.path),
            "size": self.size,
            "mtime": self.mtime,
            "trashed_at": self.trashed_at,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ConflictItem:
    """One conflict copy: ``copy`` is the losing version beside ``path``, the current one.

    ``mtime`` and ``size`` are the copy's; ``current_mtime`` and ``current_size`` the current
    version's (None when there is none), so both can be shown side by side. ``location`` is
    the key of the location the copy is listed (and resolved) in.
    """

    id: str
    path: str
    copy: str
    location: str
    mtime: float
    size: int
    current_mtime: float | None = None
    current_size: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The issue's fields (id, path, copy, location, mtime, size) plus the current's."""
        return {
            "id": self.id,
            "path": text(self.path),
            "copy": text(self.copy),
            "location": self.location,
            "mtime": self.mtime,
            "size": self.size,
            "current_mtime": self.current_mtime,
            "current_size": self.current_size,
        }


@dataclass(frozen=True)
class RestoreResult:
    """Where a restored version landed: its own ``path``, or a ``.restored-…`` name beside it.

    ``error`` is empty on success; only :func:`~app.versions.restore_window` returns failures
    this way (one per version it could not restore), :func:`~app.versions.restore` raises.
    """

    location: str
    path: str
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        """``{"location", "path"}`` (and ``"error"`` when it failed)."""
        out: dict[str, Any] = {"location": self.location, "path": text(self.path)}
        if self.error:
            out["error"] = self.error
        return out
