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

A commit can fail (the disk is full, an I/O error), and SQLite may then roll the whole
transaction back, leaving the engine's mirror ahead of the file. So every write since the last
successful commit is also kept in a list, and a later :meth:`commit` replays it into a fresh
transaction: nothing recorded is lost while the disk is full, and the first commit that works
saves all of it. A failed commit raises :class:`StateDiskFull` or :class:`StateIndexUnwritable`,
so the engine can stop applying changes until a commit works again.

Paths and location keys are stored as TEXT when they are valid UTF-8, as every path was before,
and as a BLOB of the file system's bytes when they are not (a Linux file name may be any bytes;
Python carries the undecodable ones as surrogate escapes, which SQLite's TEXT cannot hold). Each
name has exactly one form, so lookups and the primary keys work as before and older databases
need no migration.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from sys import intern

from app.errors import StateDiskFull, StateIndexUnwritable
from app.locations.base import FileMeta

Row = tuple[str | bytes, int, int, int]
#: ``_mirror.mirror_into`` (a C speedup of :func:`load_rows`), or None where it did not build.
_mirror_into: Callable[[dict[str, FileMeta], list[Row], type[FileMeta]], None] | None
try:
    if os.environ.get("FILESYNC_PURE_PYTHON") == "1":
        raise ImportError("FILESYNC_PURE_PYTHON=1")
    from app.engine._mirror import mirror_into
except ImportError:  # not built (no compiler at install): the Python loop in load_rows
    _mirror_into = None
else:
    _mirror_into = mirror_into
#: ``_rows.load_into`` (a C speedup of :meth:`StateIndex.load` that reads the rows with a
#: connection of its own), or None where it did not build or would run another SQLite library
#: than the sqlite3 module (two copies of SQLite in one process break each other's locks).
_load_into: Callable[[bytes, str | bytes, dict[str, FileMeta], type[FileMeta]], None] | None
_load_into = None
try:
    if os.environ.get("FILESYNC_PURE_PYTHON") == "1":
        raise ImportError("FILESYNC_PURE_PYTHON=1")
    from app.engine._rows import load_into, same_library
except ImportError:  # not built (no compiler or no SQLite headers at install)
    pass
else:
    _sqlite3_file = getattr(sys.modules.get("_sqlite3"), "__file__", None)
    if _sqlite3_file is not None and same_library(_sqlite3_file):
        _load_into = load_into

Params = tuple[str | bytes | int, ...]
#: Less free space than this on the state disk reads as "full" (SQLite needs whole pages).
_FULL_BELOW = 64 * 1024
#: The state index's file name in the state folder (the CLI and the desktop app share it).
INDEX_FILE = "index.sqlite"
_PUT = "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)"
#: Puts that wait at most for their call into SQLite (see :meth:`StateIndex.put`).
PUT_BATCH = 1024
_new_meta = tuple.__new__
#: SQLite's integers are 64-bit: an mtime outside them (a file dated after 2262 or before
#: 1677, in ns) is stored as its decimal digits in a BLOB (text or a too-large integer would
#: become an inexact REAL in an INTEGER column), and read back as the same integer.
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1
#: Rows a fetch while loading: few enough that they cost little memory beside the mirror.
_LOAD_ROWS = 8192


def _stored(name: str) -> str | bytes:
    """How ``name`` is kept in SQLite: TEXT if it is UTF-8, else the bytes it stands for."""
    if name.isascii():  # most names, checked without encoding them
        return name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape")
    return name


def _loaded(value: str | bytes) -> str:
    """The name a stored value stands for (the inverse of :func:`_stored`)."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


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


def speedup() -> bool:
    """True when :meth:`StateIndex.load` builds the mirror in C (``--self-check`` says so)."""
    return _mirror_into is not None or _load_into is not None


def reads_directly() -> bool:
    """True when :meth:`StateIndex.load` reads committed rows in C, without the sqlite3 module."""
    return _load_into is not None


def load_rows(rows: Iterable[Row]) -> dict[str, FileMeta]:
    """The mirror of ``rows`` without the C speedup (and the reference it must equal).

    ``tuple.__new__`` builds each FileMeta in C (``FileMeta(...)`` runs a Python ``__new__``).
    """
    return {
        intern(path if path.__class__ is str else _loaded(path)): _new_meta(
            FileMeta, (size, mtime, tag)
        )
        for path, size, mtime, tag in rows
    }


class StateIndex:
    """Last-synced (size, mtime) of every path in every location, in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        #: The file as the C reader opens it (:data:`_load_into`), whatever the working folder.
        self._file = os.fsencode(self.path.absolute())
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise self._error(exc, "cannot open") from None
        #: Every write since the last successful commit, in order (replayed after a failure).
        self._pending: list[tuple[str, Params]] = []
        #: Puts recorded but not yet run: they go to SQLite together (:meth:`_flush_puts`).
        self._puts: list[Params] = []
        #: The open transaction lost writes (SQLite rolled it back): replay before going on.
        self._broken = False
        self._closed = False

    @property
    def unsaved(self) -> int:
        """How many writes wait for a successful commit."""
        return len(self._pending)

    def _error(self, exc: sqlite3.Error, doing: str) -> StateIndexUnwritable:
        """The one-line error a user can act on for a failed SQLite call."""
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or self._disk_full():
            return StateDiskFull(
                f"{doing} the state index {self.path}: the disk is full (free some space on "
                "it, or use --state on another disk)"
            )
        return StateIndexUnwritable(f"{doing} the state index {self.path}: {exc}")

    def _disk_full(self) -> bool:
        """True when the state folder's disk has no room left.

        SQLite reports a full disk met while creating its ``-shm`` file as a plain I/O error.
        """
        try:
            st = os.statvfs(self.path.parent)
        except (OSError, AttributeError):  # statvfs is POSIX only
            return False
        return st.f_bavail * st.f_frsize < _FULL_BELOW

    def _write(self, sql: str, params: Params) -> None:
        """Run one write in the open transaction and keep it for a replay."""
        with self._lock:
            self._flush_puts()
            self._pending.append((sql, params))
            if self._broken:
                return
            try:
                self._db.execute(sql, params)
            except sqlite3.Error:
                self._broken = True  # the next commit replays everything pending

    def _flush_puts(self) -> None:
        """Run the puts recorded so far, in order, before anything else reaches SQLite.

        One ``executemany`` for them all. Rows once went as one JSON array in one statement,
        because ``executemany`` gives up the interpreter lock at every row and the copy threads
        held it often; they no longer do (their copies run in C), and encoding and parsing the
        JSON cost more than the rows' own inserts: 10,000 new files into two folders, 8 rounds
        interleaved, engine thread 0.29 -> 0.26 s of CPU.
        """
        puts, self._puts = self._puts, []
        if not puts or self._broken:
            return  # a broken transaction is replayed from _pending
        try:
            self._db.executemany(_PUT, puts)
        except sqlite3.Error:
            self._broken = True

    def _replay(self) -> None:
        """Start a fresh transaction holding every pending write (raises sqlite3.Error)."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._db.execute("BEGIN")
        for sql, params in self._pending:
            self._db.execute(sql, params)
        self._broken = False

    def _readable(self) -> None:
        """Before a read: make the open transaction hold every pending write if it can."""
        self._flush_puts()
        if self._broken:
            with contextlib.suppress(sqlite3.Error):
                self._replay()

    def has_history(self, location: str) -> bool:
        """True when ``location`` has been synced before (so its missing files were deleted)."""
        with self._lock:
            self._readable()
            row = self._db.execute(
                "SELECT 1 FROM locations WHERE key = ?", (_stored(location),)
            ).fetchone()
            return row is not None

    def mark_known(self, location: str) -> None:
        """Record that ``location`` completed a sync, even if it holds no file."""
        self._write("INSERT OR IGNORE INTO locations(key) VALUES (?)", (_stored(location),))

    def load(self, location: str) -> dict[str, FileMeta]:
        """Every recorded path of ``location`` with its meta.

        Where nothing written waits for a commit, the C reader (:data:`_load_into`) reads the
        rows with a connection of its own: it sees what is committed, which is then all there
        is. The sqlite3 module costs five times what SQLite needs to read a row (a tuple of
        four new objects, and the interpreter lock given up and taken back at every row): 8 of
        a 10,000-file restart's 0.1 s. Should the reader fail, this connection reads them.
        """
        with self._lock:
            self._readable()
            if _load_into is not None and not self._pending:
                mirror: dict[str, FileMeta] = {}
                try:
                    _load_into(self._file, _stored(location), mirror, FileMeta)
                except (OSError, ValueError):  # read here: this connection's error, if any
                    pass
                else:
                    return mirror
            where = (_stored(location),)
            rows = self._db.execute(
                "SELECT path, size, mtime_ns, tag FROM files WHERE location = ?", where
            )
            # Interned: every location's mirror and listing then shares one string a path.
            if _mirror_into is not None:  # the C speedup (app/engine/_mirror.c)
                mirror = {}
                while batch := rows.fetchmany(_LOAD_ROWS):
                    _mirror_into(mirror, batch, FileMeta)
            else:
                mirror = load_rows(rows)
            odd = self._db.execute(  # the mtimes stored as digits (see _INT_MAX), if any
                "SELECT path, size, mtime_ns, tag FROM files"
                " WHERE location = ? AND typeof(mtime_ns) <> 'integer'",
                where,
            )
            for path, size, mtime, tag in odd:
                mirror[intern(_loaded(path))] = FileMeta(size, int(mtime), tag)
            return mirror

    def put(self, location: str, path: str, meta: FileMeta) -> None:
        """Record that ``path`` in ``location`` is in sync with this meta.

        The row reaches SQLite with the next other write, read or commit (:meth:`_flush_puts`),
        or once :data:`PUT_BATCH` rows wait: run at a chunk's commit, the puts of 2,000 paths
        kept every location's worker idle meanwhile (a third of the engine thread's time in
        an initial sync); run as they come, they overlap the workers' copies (SQLite gives up
        the interpreter lock while it works). Either way they count only once committed.
        """
        mtime = meta.mtime_ns
        stored = mtime if _INT_MIN <= mtime <= _INT_MAX else b"%d" % mtime
        row = (_stored(location), _stored(path), meta.size, stored, meta.tag)
        with self._lock:
            self._pending.append((_PUT, row))
            self._puts.append(row)
            if len(self._puts) >= PUT_BATCH:
                self._flush_puts()

    def put_group(self, location: str, rows: list[tuple[str, FileMeta]]) -> None:
        """:meth:`put` for many paths of one location (one lock and one call for them all)."""
        where = _stored(location)
        stored = [
            (
                where,
                _stored(path),
                m.size,
                m.mtime_ns if _INT_MIN <= m.mtime_ns <= _INT_MAX else b"%d" % m.mtime_ns,
                m.tag,
            )
            for path, m in rows
        ]
        with self._lock:
            self._pending += [(_PUT, row) for row in stored]
            self._puts += stored
            if len(self._puts) >= PUT_BATCH:
                self._flush_puts()

    def remove(self, location: str, path: str) -> None:
        """Forget ``path`` in ``location`` (it was deleted everywhere, or renamed)."""
        self._write(
            "DELETE FROM files WHERE location = ? AND path = ?", (_stored(location), _stored(path))
        )

    def load_stale(self, location: str) -> set[str]:
        """Paths that changed elsewhere while ``location`` was unavailable."""
        with self._lock:
            self._readable()
            rows = self._db.execute(
                "SELECT path FROM stale WHERE location = ?", (_stored(location),)
            )
            return {_loaded(row[0]) for row in rows}

    def mark_stale(self, location: str, path: str) -> None:
        """Remember that ``path`` changed elsewhere while ``location`` could not be reached."""
        self._write("INSERT OR IGNORE INTO stale VALUES (?, ?)", (_stored(location), _stored(path)))

    def clear_stale(self, location: str, path: str) -> None:
        """``location`` has caught up on ``path``."""
        self._write(
            "DELETE FROM stale WHERE location = ? AND path = ?", (_stored(location), _stored(path))
        )

    def forget_location(self, location: str) -> None:
        """Drop all history of a location the user removed."""
        key = _stored(location)
        with self._lock:
            self._write("DELETE FROM files WHERE location = ?", (key,))
            self._write("DELETE FROM stale WHERE location = ?", (key,))
            self._write("DELETE FROM locations WHERE key = ?", (key,))

    def commit(self) -> None:
        """Make everything recorded so far durable (one transaction per engine batch).

        Raises :class:`StateDiskFull` or :class:`StateIndexUnwritable` when that fails; the
        writes are kept and the next call tries them again.
        """
        with self._lock:
            if not self._pending:
                return
            self._flush_puts()
            try:
                if self._broken:
                    self._replay()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._broken = True
                with contextlib.suppress(sqlite3.Error):
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                raise self._error(exc, "cannot save") from None
            self._pending.clear()
            try:
                self._db.execute("BEGIN")
            except sqlite3.Error:  # pragma: no cover - BEGIN DEFERRED touches no file
                self._broken = True

    def close(self) -> None:
        """Commit and close. Safe to call twice; raises like :meth:`commit`, closed anyway."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                try:
                    self.commit()
                except StateIndexUnwritable as exc:
                    raise type(exc)(f"{exc}; the last synced changes are not recorded") from None
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("COMMIT")  # the empty transaction commit() opened
            finally:
                self._db.close()  # an unsaved transaction is rolled back
