"""What a bucket lists, turned into file metas: keys, ETags and rclone-compatible times.

A listing (``ListObjectsV2``) gives key, size, ETag and ``LastModified`` but no user metadata,
so the file's own time (user metadata ``mtime``, seconds since the epoch with a fraction, as
rclone writes and reads it) costs one ``HEAD`` per object. :class:`MtimeCache` remembers the
time of every object version it has seen, keyed by what the listing shows of it, so a poll of
an unchanged bucket asks for nothing but the listing; only new or changed objects are HEADed.
It is saved across restarts by :mod:`.saved`.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from app.locations.base import FileMeta

NS = 1_000_000_000
#: The user metadata key that holds a file's modification time (rclone's name for it).
MTIME_KEY = "mtime"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_mtime(mtime_ns: int) -> str:
    """``1700000000.123456789``: seconds with all nine digits, exactly as rclone writes it."""
    seconds, frac = divmod(mtime_ns, NS)
    return f"{seconds}.{frac:09d}"


def parse_mtime(text: str | None) -> int | None:
    """The ns time in an ``mtime`` metadata value (any decimal form), or None if unusable."""
    if not text:
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    return int(value * NS)


def mtime_of(metadata: dict[str, str]) -> int | None:
    """The ``mtime`` user metadata, whatever case the server returns its key in."""
    for key, value in metadata.items():
        if key.lower() == MTIME_KEY:
            return parse_mtime(value)
    return None


def etag_of(raw: str) -> str:
    """An ETag without its quotes (some servers list it bare, and quote it elsewhere)."""
    return raw.strip().strip('"')


def tag_of(etag: str) -> int:
    """The :class:`FileMeta` tag for an ETag: it changes whenever the content does."""
    return zlib.crc32(etag.encode()) or 1


def datetime_ns(when: datetime) -> int:
    """A timezone-aware datetime as ns since the epoch (exact: no float on the way)."""
    return (when - _EPOCH) // timedelta(microseconds=1) * 1000


@dataclass(frozen=True, slots=True)
class Listed:
    """One object as a listing shows it; ``modified_ns`` is the server's ``LastModified``."""

    size: int
    etag: str
    modified_ns: int

    def meta(self, mtime_ns: int | None) -> FileMeta:
        """The file's meta: our stored time where there is one, else the server's."""
        when = self.modified_ns if mtime_ns is None else mtime_ns
        return FileMeta(self.size, when, tag_of(self.etag))


class MtimeCache:
    """The ``mtime`` metadata of object versions seen, so unchanged objects cost no HEAD.

    A version is what the listing shows of it (size, ETag, LastModified). Our own uploads are
    noted by size and ETag before any listing shows their LastModified; the first listing
    that matches fills that in.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, tuple[Listed, int | None]] = {}
        #: Changed since the last :meth:`take_changes` (worth saving).
        self._changed = False

    def get(self, key: str, listed: Listed) -> tuple[bool, int | None]:
        """``(known, mtime_ns)`` for ``listed``; ``known`` False means a HEAD is needed."""
        with self._lock:
            seen = self._known.get(key)
            if seen is None:
                return False, None
            version, mtime = seen
            if version == listed:
                return True, mtime
            if version.modified_ns == -1 and (version.size, version.etag) == (
                listed.size,
                listed.etag,
            ):
                self._known[key] = (listed, mtime)
                self._changed = True
                return True, mtime
            return False, None

    def put(self, key: str, listed: Listed, mtime_ns: int | None) -> None:
        """Remember ``listed``'s time (``modified_ns`` -1: our upload, not listed yet)."""
        with self._lock:
            self._known[key] = (listed, mtime_ns)
            self._changed = True

    def forget(self, key: str) -> None:
        """The object is gone (deleted by us)."""
        with self._lock:
            self._changed |= self._known.pop(key, None) is not None

    def keep_only(self, keys: set[str], under: str) -> None:
        """Drop entries under ``under`` that a full listing of it no longer shows."""
        with self._lock:
            for key in [k for k in self._known if k.startswith(under) and k not in keys]:
                del self._known[key]
                self._changed = True

    def restore(self, saved: dict[str, tuple[Listed, int | None]]) -> None:
        """Add what an earlier run learned (entries learned in this run win)."""
        with self._lock:
            self._known = {**saved, **self._known}

    def take_changes(self) -> dict[str, tuple[Listed, int | None]] | None:
        """Every entry if any changed since the last call (then worth saving), else None."""
        with self._lock:
            if not self._changed:
                return None
            self._changed = False
            return dict(self._known)
