"""Groups of copies into a folder share one durability pass (issue 11).

The ``syncfs`` that makes group N+1's temp files durable makes group N's renames durable too,
so group N's rows may be recorded only after that pass (or the last group's own pass). These
tests watch the order from a folder location that does the real writes and notes each call,
make a pass fail, and kill the process between a pass and the index commit.
"""

from __future__ import annotations

import errno
import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from app.engine import chunks, copies
from app.engine.engine import Engine
from app.engine.index import StateIndex
from app.engine.settings import EngineSettings
from app.locations.base import TEMP_PREFIX, FileMeta, WriteJob, WriteOutcome
from app.locations.folder.location import FolderLocation
from tests.helpers import indexed, tree, write_file

FILES = 700


@pytest.fixture(autouse=True)
def _small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups of 256 files, as when watching, so that 700 files make several groups (new
    files handed over 128 at a time: the first group has 128), and chunks of 2,000 paths, so
    that 3,000 make two."""
    monkeypatch.setattr(copies, "GROUP_FILES_WAITED", copies.GROUP_FILES)
    monkeypatch.setattr(chunks, "NEW_PIECE", 128)
    monkeypatch.setattr(chunks, "COMMIT_EVERY", 2000)


def _source(root: Path, files: int = FILES) -> dict[str, bytes]:
    rng = random.Random(5)
    made: dict[str, bytes] = {}
    for i in range(files):
        rel = f"d{i % 7}/f{i:04d}"
        made[rel] = rng.randbytes(rng.randint(1, 4) * 512)
        write_file(root / rel, made[rel])
    return made


class NotingFolder(FolderLocation):
    """A real folder that notes which copies wait for a durability pass, and checks at the
    start of every pass that none of them is recorded in the index yet."""

    def __init__(self, root: Path, index: StateIndex) -> None:
        super().__init__(root)
        self.index = index
        self.waiting: set[str] = set()  # renamed, no pass since
        self.unsettled_calls = 0
        self.settled_calls = 0  # write_many and settle_writes: a pass of their own
        self.recorded_too_early: set[str] = set()
        self.fail_settle = False
        self.lost: set[str] = set()
        self.fail_unsettled_call = 0  # that call (1-based) fails as if its syncfs had

    def _check(self) -> None:
        rows = self.index.load(self.key)
        self.recorded_too_early |= self.waiting & rows.keys()

    def write_many(
        self, jobs: Sequence[WriteJob], *, parallel_reads: bool = False
    ) -> list[WriteOutcome]:
        self._check()
        self._fail_last_pass()
        self.settled_calls += 1
        outcomes = super().write_many(jobs, parallel_reads=parallel_reads)
        self.waiting.clear()
        return outcomes

    def write_many_unsettled(
        self, jobs: Sequence[WriteJob], *, parallel_reads: bool = False
    ) -> list[WriteOutcome]:
        self._check()
        self.unsettled_calls += 1
        if self.unsettled_calls == self.fail_unsettled_call:
            raise OSError(errno.EIO, "syncfs failed")  # nothing of this group is written
        outcomes = super().write_many_unsettled(jobs, parallel_reads=parallel_reads)
        self.waiting = {
            j.path for j, o in zip(jobs, outcomes, strict=True) if isinstance(o, FileMeta)
        }
        return outcomes

    def settle_writes(self) -> None:
        self._check()
        self._fail_last_pass()
        self.settled_calls += 1
        super().settle_writes()
        self.waiting.clear()

    def _fail_last_pass(self) -> None:
        """The pass that was to cover the waiting group fails (before this call wrote any)."""
        if self.fail_settle and self.waiting:
            self.fail_settle = False
            self.lost = set(self.waiting)
            raise OSError(errno.EIO, "syncfs failed")


def _sync(a: Path, b: Path, state: Path, **fail: object) -> tuple[NotingFolder, Engine]:
    index = StateIndex(state / "index.sqlite")
    target = NotingFolder(b, index)
    for name, value in fail.items():
        setattr(target, name, value)
    engine = Engine([FolderLocation(a), target], index, EngineSettings())
    engine.start(watch=False)
    return target, engine


def _finish(engine: Engine) -> None:
    engine.stop()
    engine.close()


def test_a_groups_rows_are_recorded_only_after_a_later_pass_made_it_durable(
    tmp_path: Path,
) -> None:
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    files = _source(a)
    b.mkdir()
    target, engine = _sync(a, b, state)
    _finish(engine)
    assert target.unsettled_calls >= 2, "the groups did not share their passes"
    assert not target.recorded_too_early, sorted(target.recorded_too_early)[:5]
    assert tree(b) == files
    assert indexed(state, b) == set(files)


def test_chunks_of_paths_share_passes_too_and_only_the_last_settles_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last group of a chunk of paths waits for the next chunk's first pass instead of
    a pass of its own (which each chunk paid, with its wait): one pass of its own in all,
    no row before its pass, every row in the index at the end."""
    monkeypatch.setattr(chunks, "COMMIT_EVERY", 200)  # 700 paths: four chunks
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    files = _source(a)
    b.mkdir()
    target, engine = _sync(a, b, state)
    _finish(engine)
    assert target.settled_calls == 1, f"{target.settled_calls} passes of their own"
    assert target.unsettled_calls >= 4
    assert not target.recorded_too_early, sorted(target.recorded_too_early)[:5]
    assert tree(b) == files
    assert indexed(state, b) == set(files)


def test_a_chunks_replaced_files_are_durable_before_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk's commit holds the source's new rows of the files it replaced elsewhere, so
    their renames must be durable by then: a rename lost at a power cut would leave both
    locations' rows agreeing with both files, the old version never updated. (New files may
    wait for the next chunk's pass: their loss is seen as a file missing.)"""
    monkeypatch.setattr(chunks, "COMMIT_EVERY", 200)  # 700 paths: four chunks
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    _source(a)
    b.mkdir()
    _finish(_sync(a, b, state)[1])
    rng = random.Random(9)
    files = {}
    for rel in tree(a):
        files[rel] = rng.randbytes(rng.randint(1, 4) * 512)
        write_file(a / rel, files[rel], mtime=2_000_000_000)
    replaced: set[str] = set()
    undurable_at_commit: list[set[str]] = []
    real_unsettled = NotingFolder.write_many_unsettled

    def noting(
        self: NotingFolder, jobs: Sequence[WriteJob], *, parallel_reads: bool = False
    ) -> list[WriteOutcome]:
        replaced.update(j.path for j in jobs if j.expected is not None)
        return real_unsettled(self, jobs, parallel_reads=parallel_reads)

    real_commit = StateIndex.commit
    targets: list[NotingFolder] = []

    def checking(self: StateIndex) -> None:
        if targets:
            undurable_at_commit.append(targets[0].waiting & replaced)
        real_commit(self)

    monkeypatch.setattr(NotingFolder, "write_many_unsettled", noting)
    monkeypatch.setattr(StateIndex, "commit", checking)
    index = StateIndex(state / "index.sqlite")
    target = NotingFolder(b, index)
    targets.append(target)
    engine = Engine([FolderLocation(a), target], index, EngineSettings())
    engine.start(watch=False)
    _finish(engine)
    assert replaced, "nothing was replaced"
    assert not any(undurable_at_commit), [sorted(s)[:3] for s in undurable_at_commit if s]
    assert tree(b) == files


def test_a_failed_closing_pass_records_none_of_the_group_it_covered_and_a_rerun_converges(
    tmp_path: Path,
) -> None:
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    files = _source(a)
    b.mkdir()
    target, engine = _sync(a, b, state, fail_settle=True)
    _finish(engine)
    saved, on_disk = indexed(state, b), tree(b)
    assert target.lost, "no group waited for the last pass"
    assert target.lost <= on_disk.keys()  # on their names, whole: only unrecorded
    assert not target.lost & saved, "rows recorded for renames no pass made durable"
    assert saved <= on_disk.keys()
    for rel, data in on_disk.items():
        assert data == files[rel]
    _, engine = _sync(a, b, state)
    assert engine.converged()
    _finish(engine)
    assert indexed(state, b) == set(files)
    assert not list(b.rglob("*.sync-conflict-*")), "a rerun must not invent conflicts"


def test_a_failed_shared_pass_records_neither_group_and_a_rerun_converges(
    tmp_path: Path,
) -> None:
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    files = _source(a)
    b.mkdir()
    _, engine = _sync(a, b, state, fail_unsettled_call=3)
    _finish(engine)
    saved, on_disk = indexed(state, b), tree(b)
    assert saved <= set(on_disk), "rows for copies not on disk"
    assert len(saved) < len(on_disk), "the group before the failed pass was recorded"
    for rel, data in on_disk.items():
        assert data == files[rel]
    _, engine = _sync(a, b, state)
    assert engine.converged()
    _finish(engine)
    assert tree(b) == files and indexed(state, b) == set(files)
    assert not list(b.rglob("*.sync-conflict-*")), "a rerun must not invent conflicts"


_KILLED_CHILD = """
import os, signal, sys
from pathlib import Path
from app.engine import chunks, copies
from app.engine.engine import Engine
from app.engine.index import StateIndex
from app.engine.settings import EngineSettings
from app.locations.folder.location import FolderLocation

copies.GROUP_FILES_WAITED = copies.GROUP_FILES  # many groups, as the parent's tests
chunks.NEW_PIECE, chunks.COMMIT_EVERY = 128, 2000  # and two chunks of paths
a, b, state, point = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]

class Killed(FolderLocation):
    unsettled = settling = 0
    def write_many_unsettled(self, jobs, *, parallel_reads=False):
        outcomes = super().write_many_unsettled(jobs, parallel_reads=parallel_reads)
        Killed.unsettled += 1
        if point == "after-shared-pass" and Killed.unsettled == 12:
            os.kill(os.getpid(), signal.SIGKILL)
        return outcomes
    def write_many(self, jobs, *, parallel_reads=False):
        return self._last(super().write_many(jobs, parallel_reads=parallel_reads))
    def settle_writes(self):
        self._last(super().settle_writes())
    def _last(self, result):
        Killed.settling += 1
        if point == "after-last-pass" and Killed.settling == 1:  # only the last chunk settles
            os.kill(os.getpid(), signal.SIGKILL)
        return result

index = StateIndex(state / "index.sqlite")
Engine([FolderLocation(a), Killed(b)], index, EngineSettings()).start(watch=False)
"""


def test_a_kill_between_a_shared_pass_and_the_commit_loses_nothing(tmp_path: Path) -> None:
    """Killed right after a pass that covered a group whose rows were not committed yet (and,
    second run, right after the last pass of the second chunk of paths, the first one
    committed but for its last group, which waited for the second chunk's first pass): every
    name holds its whole file, the index holds no row for a file not on disk, and a restart
    converges with no conflict copy."""
    a = tmp_path / "a"
    files = _source(a, 3000)  # two chunks of paths: the first is committed on its own
    for point in ("after-shared-pass", "after-last-pass"):
        b, state = tmp_path / f"b-{point}", tmp_path / f"state-{point}"
        b.mkdir()
        state.mkdir()
        with open(tmp_path / f"{point}.log", "wb") as log:
            child = subprocess.run(
                [sys.executable, "-c", _KILLED_CHILD, str(a), str(b), str(state), point],
                stdout=log,
                stderr=log,
                timeout=300,
                check=False,
            )
        assert child.returncode == -9, (tmp_path / f"{point}.log").read_text()
        on_disk, saved = tree(b), indexed(state, b)
        assert on_disk and len(saved) < len(files), f"{point}: the kill was not mid-sync"
        for rel, data in on_disk.items():
            assert data == files[rel], f"{point}: {rel} is partial"
        assert saved <= set(on_disk), f"{point}: rows for copies not on disk"
        args = ["run", f"folder:{a}", f"folder:{b}", "--once", "--state", str(state)]
        restart = subprocess.run(
            [sys.executable, "-m", "app", *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert restart.returncode == 0, restart.stderr
        assert tree(b) == files
        assert indexed(state, b) == set(files)
        assert not list(b.rglob("*.sync-conflict-*")), f"{point}: a restart made conflicts"
        assert not [p for p in b.rglob(f"{TEMP_PREFIX}*") if ".filesync" not in p.parts]
