"""The persistent state index: what every location held when it was last in sync.

It is what tells "deleted here while FileSync was off" (in the index, gone from the location)
from "new elsewhere" (not in the index). Rows are kept per location, so adding or removing a
location later keeps the others' history. A second table remembers, per location, the paths
that changed elsewhere while that location was unreachable, so it catches up when it is back.

SQLite in WAL mode with ``synchronous=NORMAL``: a kill -9 loses at most the last uncommitted
batch, and a lost row only means that on restart a copy is recognised as in sync by its size and
mtime instead of by its row. Commits are batched by the engine (one per batch of files), because
a commit per file would dominate the cost of syncing small files.

The engine reads from an in-memory mirror (:meth:`load`) and writes through to SQLite, so a
lookup never costs a query.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from app.locations.base import FileMeta

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    location TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    tag INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (location, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stale (
    location TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (location, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS locations (
    key TEXT PRIMARY KEY,
    first_seen REAL NOT NULL DEFAULT (unixepoch())
);
"""


class StateIndex:
    """Last-synced (size, mtime) of every path in every location, in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute("BEGIN")
        self._dirty = False
        self._closed = False

    def has_history(self, location: str) -> bool:
        """True when ``location`` has been synced before (so its missing files were deleted)."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM locations WHERE key = ?", (location,)).fetchone()
            return row is not None

    def mark_known(self, location: str) -> None:
        """Record that ``location`` completed a sync, even if it holds no file."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO locations(key) VALUES (?)", (location,))
            self._dirty = True

    def load(self, location: str) -> dict[str, FileMeta]:
        """Every recorded path of ``location`` with its meta."""
        with self._lock:
            rows = self._db.execute(
                "SELECT path, size, mtime_ns, tag FROM files WHERE location = ?", (location,)
            )
            return {path: FileMeta(size, mtime, tag) for path, size, mtime, tag in rows}

    def put(self, location: str, path: str, meta: FileMeta) -> None:
        """Record that ``path`` in ``location`` is in sync with this meta."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                (location, path, meta.size, meta.mtime_ns, meta.tag),
            )
            self._dirty = True

    def remove(self, location: str, path: str) -> None:
        """Forget ``path`` in ``location`` (it was deleted everywhere, or renamed)."""
        with self._lock:
            self._db.execute("DELETE FROM files WHERE location = ? AND path = ?", (location, path))
            self._dirty = True

    def load_stale(self, location: str) -> set[str]:
        """Paths that changed elsewhere while ``location`` was unavailable."""
        with self._lock:
            rows = self._db.execute("SELECT path FROM stale WHERE location = ?", (location,))
            return {row[0] for row in rows}

    def mark_stale(self, location: str, path: str) -> None:
        """Remember that ``path`` changed elsewhere while ``location`` could not be reached."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO stale VALUES (?, ?)", (location, path))
            self._dirty = True

    def clear_stale(self, location: str, path: str) -> None:
        """``location`` has caught up on ``path``."""
        with self._lock:
            self._db.execute("DELETE FROM stale WHERE location = ? AND path = ?", (location, path))
            self._dirty = True

    def forget_location(self, location: str) -> None:
        """Drop all history of a location the user removed."""
        with self._lock:
            self._db.execute("DELETE FROM files WHERE location = ?", (location,))
            self._db.execute("DELETE FROM stale WHERE location = ?", (location,))
            self._db.execute("DELETE FROM locations WHERE key = ?", (location,))
            self._dirty = True

    def commit(self) -> None:
        """Make everything recorded so far durable (one transaction per engine batch)."""
        with self._lock:
            if self._dirty:
                self._db.execute("COMMIT")
                self._db.execute("BEGIN")
                self._dirty = False

    def close(self) -> None:
        """Commit and close. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self.commit()
            self._db.execute("COMMIT")
            self._db.close()
            self._closed = True
