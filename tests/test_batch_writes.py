"""A folder lands a group of copies together (issue 11) and keeps every per-file guarantee.

The group's temp files are written in parallel and made durable with one pass before any is
renamed into place; these tests check what a user can see of that: every file whole with its
mtime, a file saved during the group kept (its job fails alone), old versions in the trash,
and a full disk in the middle of a group that loses nothing and says what to do.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from app.engine.engine import Engine
from app.errors import FileChanged, FileVanished
from app.locations.base import FileMeta, Location, WriteJob
from tests.disks import fill, small_tmpfs
from tests.engine_fixtures import Rig
from tests.helpers import indexed, tree, wait_until, write_file
from tests.writes import job

SECOND = 1_000_000_000


def test_a_group_lands_every_file_whole_with_its_mtime(folder_location: Location) -> None:
    root = Path(folder_location.local_paths()[0])
    files = {f"d{i % 7}/sub/f{i}.bin": os.urandom(i * 37) for i in range(60)}
    jobs = [job(p, data, 1_600_000_000 + i) for i, (p, data) in enumerate(files.items())]
    outcomes = folder_location.write_many(jobs, parallel_reads=True)
    assert all(isinstance(o, FileMeta) for o in outcomes), outcomes
    assert tree(root) == files
    listing = folder_location.scan()
    for (path, _), outcome in zip(files.items(), outcomes, strict=True):
        assert listing[path] == outcome  # what the engine records is what a scan reports
    for i, path in enumerate(files):
        assert (root / path).stat().st_mtime_ns == (1_600_000_000 + i) * SECOND
    assert not [p for p in root.rglob(".filesync-tmp-*")], "temp files left behind"


def test_a_file_saved_while_its_group_is_written_is_kept(folder_location: Location) -> None:
    """The re-check happens just before each rename, not when the engine planned the copy."""
    root = Path(folder_location.local_paths()[0])
    write_file(root / "doc.txt", "old")
    planned = folder_location.stat("doc.txt")

    @contextlib.contextmanager
    def saved_meanwhile() -> Iterator[BinaryIO]:
        write_file(root / "doc.txt", "the user's save, made during the group")
        yield io.BytesIO(b"other")

    jobs = [job(f"f{i}", b"x" * i) for i in range(20)]
    jobs.insert(10, WriteJob("doc.txt", saved_meanwhile, 5 * SECOND, planned))
    outcomes = folder_location.write_many(jobs, parallel_reads=True)
    assert isinstance(outcomes[10], FileChanged)
    assert (root / "doc.txt").read_text() == "the user's save, made during the group"
    assert sum(isinstance(o, FileMeta) for o in outcomes) == 20


def test_a_source_that_vanished_fails_only_its_own_job(folder_location: Location) -> None:
    def gone() -> contextlib.AbstractContextManager[BinaryIO]:
        raise FileVanished("file vanished", location="elsewhere", path="gone.txt")

    jobs = [job("a.txt", b"a"), WriteJob("gone.txt", gone, SECOND, None), job("b.txt", b"b")]
    outcomes = folder_location.write_many(jobs)
    assert isinstance(outcomes[0], FileMeta) and isinstance(outcomes[2], FileMeta)
    assert isinstance(outcomes[1], FileVanished)
    root = Path(folder_location.local_paths()[0])
    assert sorted(tree(root)) == ["a.txt", "b.txt"]


def test_each_version_a_group_replaces_goes_to_the_trash(folder_location: Location) -> None:
    root = Path(folder_location.local_paths()[0])
    for i in range(12):
        write_file(root / f"f{i}.txt", f"user version {i}")
    jobs = [job(f"f{i}.txt", b"new", expected=folder_location.stat(f"f{i}.txt")) for i in range(12)]
    outcomes = folder_location.write_many(jobs, parallel_reads=True)
    assert all(isinstance(o, FileMeta) for o in outcomes), outcomes
    trashed = sorted(p.read_text() for p in (root / ".filesync" / "trash").rglob("f*.txt"))
    assert trashed == sorted(f"user version {i}" for i in range(12))


def _interrupted() -> contextlib.AbstractContextManager[BinaryIO]:
    raise KeyboardInterrupt  # anything that is not one file's failure ends the group


def test_a_group_ended_by_a_stop_renames_nothing_and_leaves_no_temp_file(
    folder_location: Location,
) -> None:
    root = Path(folder_location.local_paths()[0])
    jobs = [job(f"f{i}", b"data") for i in range(30)]
    jobs.insert(15, WriteJob("stop", _interrupted, SECOND, None))
    with contextlib.suppress(KeyboardInterrupt):
        folder_location.write_many(jobs, parallel_reads=True)
    assert tree(root) == {}
    assert not list(root.rglob(".filesync-tmp-*"))


def _error_of(engine: Engine, root: Path) -> str:
    return next(s.last_error for s in engine.status().locations if s.key == f"folder:{root}")


def test_a_full_disk_in_the_middle_of_a_group_loses_nothing_and_says_so(
    tmp_path: Path,
) -> None:
    a = tmp_path / "a"
    files = {f"d{i % 4}/f{i:03d}.bin": os.urandom(8 * 1024) for i in range(120)}
    for path, data in files.items():
        write_file(a / path, data)
    with small_tmpfs(tmp_path / "b", size="4m") as b:
        (b / ".filesync").mkdir()  # the filler is FileSync's own: it is not synced
        filler = fill(b / ".filesync", leave=400 * 1024)  # room for about a third of the files
        rig = Rig(tmp_path, [a, b])
        try:
            engine = rig.start()
            wait_until(
                lambda: "free some space there" in _error_of(engine, b),
                message="a clear error for the full disk",
            )
            landed = tree(b)
            landed.pop("filler", None)
            assert 0 < len(landed) < len(files)
            assert all(files[p] == data for p, data in landed.items()), "a partial file"
            assert indexed(rig.tmp / "state", b) <= set(landed), "a row for a missing copy"
            assert tree(a) == files  # the source is untouched
            filler.unlink()
            wait_until(
                lambda: tree(b) == files,
                timeout=120,
                message="the rest once space is free",
            )
        finally:
            rig.stop()
