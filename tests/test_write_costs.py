"""What copying many small files costs in calls (issue 11), checked without changing behaviour.

An initial sync records a row for every copy, and each copy opens its source: these tests
check that the rows reach SQLite together, in order, and survive a reopen, and that a folder
read many times in one engine batch is opened once, without ever following a link planted
meanwhile and without keeping a descriptor after the batch.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.engine import index as index_module
from app.engine.index import StateIndex
from app.errors import FileSyncError
from app.locations.base import FileMeta, Location
from app.locations.folder import nofollow
from tests.helpers import write_file


class _CountingDb:
    """The index's connection, counting the calls the index makes into SQLite."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.calls: list[str] = []

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        self.calls.append(sql)
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, rows: list[object]) -> sqlite3.Cursor:
        self.calls.append(sql)
        return self._db.executemany(sql, rows)

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def _count_calls(index: StateIndex) -> _CountingDb:
    counting = _CountingDb(index._db)
    index._db = counting
    return counting


def _reloaded(path: Path, location: str) -> dict[str, FileMeta]:
    """``location``'s rows as a new run reads them from the index file ``path``."""
    reopened = StateIndex(path)
    try:
        return reopened.load(location)
    finally:
        reopened.close()


def test_the_rows_of_many_copies_reach_sqlite_in_one_call(tmp_path: Path) -> None:
    index = StateIndex(tmp_path / "index.sqlite")
    db = _count_calls(index)
    names = [f"d/f{i}" for i in range(500)] + ["ü é/😀", 'q"\\\n\t', "not utf-8 \udcff"]
    for n, name in enumerate(names):
        index.put("b", name, FileMeta(n, 2**62 + n, 2**63 - 1 - n))
    index.put("b", "d/f0", FileMeta(7, 7, 7))  # a later put of the same path wins
    index.remove("b", "d/f1")  # and a remove after a put comes after it
    index.commit()
    inserts = [s for s in db.calls if s.startswith("INSERT")]
    assert len(inserts) == 1, f"{len(inserts)} calls into SQLite for {len(names) + 1} rows"
    index.close()

    rows = _reloaded(tmp_path / "index.sqlite", "b")
    assert set(rows) == set(names) - {"d/f1"}
    assert rows["d/f0"] == FileMeta(7, 7, 7)
    assert rows["ü é/😀"] == FileMeta(500, 2**62 + 500, 2**63 - 1 - 500)
    assert rows["not utf-8 \udcff"].size == 502


def test_a_group_of_puts_stores_what_one_put_each_would(tmp_path: Path) -> None:
    """``put_group`` (a copy group's rows at once) keeps the rows, their order and the
    non-UTF-8 names exactly as one ``put`` per row does."""
    names = [f"d/f{i}" for i in range(1500)] + ["ü é/😀", "not utf-8 \udcff", "d/f3"]
    rows = [(name, FileMeta(n, 2**62 + n, n)) for n, name in enumerate(names)]
    stored = []
    for way in ("each", "group"):
        index = StateIndex(tmp_path / f"{way}.sqlite")
        try:
            if way == "each":
                for name, meta in rows:
                    index.put("folder:/b", name, meta)
            else:
                index.put_group("folder:/b", rows[:700])
                index.put_group("folder:/b", rows[700:])
            index.remove("folder:/b", "d/f1")
            index.commit()
        finally:
            index.close()
        stored.append(_reloaded(tmp_path / f"{way}.sqlite", "folder:/b"))
    assert stored[0] == stored[1]
    assert stored[1]["d/f3"] == FileMeta(1502, 2**62 + 1502, 1502)  # the later row won
    assert "d/f1" not in stored[1] and stored[1]["not utf-8 \udcff"].size == 1501


FAR = [2**63 + 5, 2**64 * 3 + 1, -(2**63) - 7, 2**63 - 1, -(2**63)]  # ns: 2262+, 1677-


@pytest.mark.parametrize("c_reader", [True, False])
def test_mtimes_beyond_64_bits_are_kept_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, c_reader: bool
) -> None:
    """A file dated after 2262 or before 1677 has an mtime in ns that SQLite's integers
    cannot hold: its row is kept all the same, exactly, beside the others (a put of one
    made every commit fail)."""
    if not c_reader:
        monkeypatch.setattr(index_module, "_load_into", None)
    index = StateIndex(tmp_path / "index.sqlite")
    try:
        index.put("b", "before", FileMeta(1, 1, 1))
        for n, mtime in enumerate(FAR):
            index.put("b", f"one/{n}", FileMeta(n, mtime, n))
        index.put_group("b", [(f"group/{n}", FileMeta(n, mtime, n)) for n, mtime in enumerate(FAR)])
        index.put("b", "after", FileMeta(2, 2, 2))
        index.commit()
    finally:
        index.close()
    rows = _reloaded(tmp_path / "index.sqlite", "b")
    assert rows["before"] == FileMeta(1, 1, 1) and rows["after"] == FileMeta(2, 2, 2)
    for n, mtime in enumerate(FAR):
        assert rows[f"one/{n}"] == FileMeta(n, mtime, n)
        assert rows[f"group/{n}"] == FileMeta(n, mtime, n)
        assert type(rows[f"group/{n}"].mtime_ns) is int


def test_a_file_dated_after_2262_syncs_and_then_stays_in_step(tmp_path: Path) -> None:
    """``touch -d 2300-01-01``: copied once, and a second run has nothing to do."""
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    write_file(a / "future.txt", "from the future")
    write_file(a / "now.txt", "from now")
    far = (2300 - 1970) * 365 * 86400 * 10**9  # beyond 2**63 ns
    os.utime(a / "future.txt", ns=(far, far))
    b.mkdir()
    args = ["run", f"folder:{a}", f"folder:{b}", "--once", "--state", str(state)]
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "app", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert (b / "future.txt").read_text() == "from the future"
        assert (b / "future.txt").stat().st_mtime_ns == far
    assert "copied" not in done.stderr, done.stderr  # the second run copied nothing


def test_puts_reach_sqlite_in_batches_as_they_come_and_count_only_once_committed(
    tmp_path: Path,
) -> None:
    """A long sync's rows go to SQLite while it copies (not all at its commit), but another
    reader of the index, or the next run after a crash, sees none of them before the commit."""
    index = StateIndex(tmp_path / "index.sqlite")
    db = _count_calls(index)
    try:
        for n in range(2 * index_module.PUT_BATCH + 5):
            index.put("b", f"d/f{n}", FileMeta(n, n, n))
        inserts = [s for s in db.calls if s.startswith("INSERT")]
        assert len(inserts) == 2, "the puts waited for the commit"
        other = sqlite3.connect(tmp_path / "index.sqlite")
        try:
            assert other.execute("SELECT COUNT(*) FROM files").fetchone() == (0,)
            index.commit()
            count = other.execute("SELECT COUNT(*) FROM files").fetchone()
        finally:
            other.close()
        assert count == (2 * index_module.PUT_BATCH + 5,)
    finally:
        index.close()


def test_puts_are_visible_to_reads_before_a_commit(tmp_path: Path) -> None:
    index = StateIndex(tmp_path / "index.sqlite")
    try:
        index.put("b", "x", FileMeta(1, 2, 3))
        assert index.load("b") == {"x": FileMeta(1, 2, 3)}
    finally:
        index.close()


def _spy_root_opens(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    opened: list[object] = []
    real = nofollow.open_root

    def counting(root: str | os.PathLike[str]) -> int:
        opened.append(root)
        return real(root)

    monkeypatch.setattr(nofollow, "open_root", counting)
    return opened


def test_reads_in_one_batch_open_their_folder_once(
    folder_location: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(folder_location.local_paths()[0])
    for i in range(40):
        write_file(root / "d" / "sub" / f"f{i}.txt", f"content {i}")
    fds_before = len(os.listdir("/proc/self/fd"))
    opened = _spy_root_opens(monkeypatch)
    with folder_location.batch():
        for i in range(40):
            with folder_location.open_read(f"d/sub/f{i}.txt") as f:
                assert f.read() == f"content {i}".encode()
    assert len(opened) == 1, f"the root was opened {len(opened)} times for 40 reads"
    assert len(os.listdir("/proc/self/fd")) == fds_before, "a kept folder stayed open"
    with folder_location.open_read("d/sub/f0.txt") as f:  # outside a batch: as before
        assert f.read() == b"content 0"
    assert len(opened) == 2


def test_a_link_planted_in_place_of_a_kept_folder_is_never_followed(
    folder_location: Location, tmp_path: Path
) -> None:
    root = Path(folder_location.local_paths()[0])
    write_file(root / "d" / "a.txt", "mine")
    outside = tmp_path / "outside"
    write_file(outside / "b.txt", "secret")
    with folder_location.batch():
        with folder_location.open_read("d/a.txt") as f:
            assert f.read() == b"mine"
        (root / "d").rename(root / "moved")
        (root / "d").symlink_to(outside, target_is_directory=True)
        with (
            pytest.raises(FileSyncError),  # vanished from the folder that was read
            folder_location.open_read("d/b.txt"),
        ):
            pass
        with folder_location.open_read("d/a.txt") as f:
            assert f.read() == b"mine"  # the file the scan saw, from where it is now
    with pytest.raises(FileSyncError, match="symbolic link"), folder_location.open_read("d/b.txt"):
        pass
