"""The object times learned from HEADs, kept in the state folder across restarts.

A listing shows no user metadata, so the time of every object costs a HEAD the first time it is
seen (:class:`~app.locations.s3.objects.MtimeCache`). Without this file every start would HEAD
the whole bucket again: 10,000 requests for a 10,000-object hub, on every machine. So the cache
is written to ``<state>/cache/s3-<hash of the location key>.json`` after a full scan that
learned something, and read back at the first ``open``.

An entry is trusted only for the exact version it was learned for: same key, size, ETag and
``LastModified``. Anything else (another client's upload while FileSync was off) is HEADed as
before. Our own uploads not yet confirmed by a listing are not written. A file that cannot be
read or does not hold what it should is ignored with one warning (the objects are HEADed, as
if it were not there) and replaced by the next save: it is a cache, never the truth.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from app.locations.s3.objects import Listed

log = logging.getLogger(__name__)

#: Bumped whenever the layout changes: a file of another format is ignored.
FORMAT = 1
Entries = dict[str, tuple[Listed, int | None]]


def times_file(cache_dir: Path, location_key: str) -> Path:
    """Where the location ``location_key`` keeps its times (no secret is in a key)."""
    digest = hashlib.sha256(location_key.encode()).hexdigest()[:24]
    return cache_dir / f"s3-{digest}.json"


class SavedTimes:
    """The times file of one location: :meth:`load` once, :meth:`save` when something changed."""

    def __init__(self, path: Path, location_key: str, name: str) -> None:
        self.path = path
        self._key = location_key
        self._name = name
        self._lock = threading.Lock()

    def load(self) -> Entries:
        """The entries in the file; none if it is missing or unusable (then HEADs as before)."""
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            self._ignored(f"cannot be read ({exc})")
            return {}
        entries = _parse(data, self._key)
        if entries is None:
            self._ignored("does not hold this location's object times")
            return {}
        return entries

    def _ignored(self, why: str) -> None:
        log.warning(
            "%s: the saved object times %s %s; reading each object's time from the server",
            self._name,
            self.path,
            why,
        )

    def save(self, entries: Entries) -> None:
        """Replace the file with ``entries`` (written whole, then renamed: never half-written).

        A failure (disk full, read-only state folder) only costs HEADs after the next restart,
        so it is logged and not raised.
        """
        rows = [
            [key, item.size, item.etag, item.modified_ns, mtime]
            for key, (item, mtime) in entries.items()
            if item.modified_ns != -1  # our upload, not yet seen in a listing
        ]
        data = json.dumps({"format": FORMAT, "location": self._key, "objects": rows})
        with self._lock:
            temp = self.path.with_name(f"{self.path.name}.tmp")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                temp.write_text(data, encoding="utf-8")
                os.replace(temp, self.path)
            except OSError as exc:
                log.warning("%s: cannot save the object times to %s: %s", self._name, temp, exc)
                with contextlib.suppress(OSError):
                    temp.unlink()


def _parse(data: object, location_key: str) -> Entries | None:
    """The entries of a decoded file, or None if any part is not what :meth:`save` writes."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    rows = data.get("objects")
    if data.get("location") != location_key or not isinstance(rows, list):
        return None
    entries: Entries = {}
    for row in rows:
        if not isinstance(row, list) or len(row) != 5:
            return None
        key, size, etag, modified_ns, mtime = row
        if not (isinstance(key, str) and isinstance(etag, str) and etag):
            return None
        if not all(type(n) is int for n in (size, modified_ns)) or size < 0 or modified_ns < 0:
            return None
        if mtime is not None and type(mtime) is not int:
            return None
        entries[key] = (Listed(size, etag, modified_ns), mtime)
    return entries
