"""Versions (issue 14): the trash and conflict copies listed, restored and resolved end to end.

A running engine over two folders, a ZIP archive and an FTP server; what the versions API
writes must reach every location through the engine, like a user's edit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.engine.conflicts import is_conflict_copy
from app.engine.engine import Engine
from app.errors import UnknownVersion
from app.locations import open_location
from app.versions import (
    list_conflicts,
    list_trash,
    resolve,
    restore,
    restore_window,
)
from tests.engine_fixtures import Rig
from tests.ftp_server import ThreadedFtpServer
from tests.helpers import tree, wait_until, write_file
from tests.test_zip_helpers import zip_tree

T0 = 1_700_000_000


@dataclass
class Mix:
    """Folders a and b, an archive and a server, and the engine over them."""

    rig: Rig
    archive: Path
    server: ThreadedFtpServer

    @property
    def a(self) -> Path:
        return self.rig.roots[0]

    @property
    def b(self) -> Path:
        return self.rig.roots[1]

    @property
    def engine(self) -> Engine:
        assert self.rig.engine is not None
        return self.rig.engine

    def trees(self) -> list[dict[str, bytes]]:
        return [tree(self.a), tree(self.b), zip_tree(self.archive), tree(self.server.root)]

    def everywhere(self, path: str, data: bytes | None) -> bool:
        """True when every location holds ``data`` at ``path`` (None: no file there)."""
        return all(t.get(path) == data for t in self.trees())

    def no_new_conflicts(self, *known: str) -> None:
        """Once the engine is idle, no location holds a conflict copy but ``known``."""
        assert self.engine.wait_idle(60)
        found = {p for t in self.trees() for p in t if is_conflict_copy(p)}
        assert found <= set(known), "the engine was raced into a conflict"

    def wait_everywhere(self, path: str, data: bytes | None) -> None:
        wait_until(
            lambda: self.everywhere(path, data),
            timeout=60,
            message=lambda: f"{path} = {data!r} everywhere: {self.trees()}",
        )


@pytest.fixture
def mix(tmp_path: Path, ftp_server: ThreadedFtpServer) -> Iterator[Mix]:
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        root.mkdir()
    archive = tmp_path / "mix.zip"
    rig = Rig(tmp_path, roots, extra_specs=[f"zip:{archive}", ftp_server.url()])
    yield Mix(rig, archive, ftp_server)
    rig.stop()


def test_a_deleted_file_restored_from_the_trash_is_back_everywhere(mix: Mix) -> None:
    mix.rig.start()
    write_file(mix.a / "docs/report.txt", b"the report", mtime=T0)
    mix.wait_everywhere("docs/report.txt", b"the report")
    before = time.time()
    (mix.b / "docs/report.txt").unlink()
    mix.wait_everywhere("docs/report.txt", None)

    items, total = list_trash(mix.engine.locations())
    assert total == len(items) >= 1
    # b's own copy went with the user's delete; a's went to a's trash when the engine deleted it.
    (item,) = [i for i in items if i.path == "docs/report.txt"]
    assert item.location == f"folder:{mix.a}"
    assert item.reason == "deleted"
    assert item.size == len(b"the report") and item.mtime == T0
    assert before - 1 <= item.trashed_at <= time.time()
    assert set(item.as_json()) == {
        "id",
        "location",
        "path",
        "size",
        "mtime",
        "trashed_at",
        "reason",
    }

    result = restore(mix.engine.locations(), item.id)
    assert (result.location, result.path) == (f"folder:{mix.a}", "docs/report.txt")
    mix.wait_everywhere("docs/report.txt", b"the report")
    assert os.stat(mix.b / "docs/report.txt").st_mtime == T0, "restored with its own mtime"
    again = restore(mix.engine.locations(), item.id)
    assert again.path == "docs/report.txt", "restoring what is already back changes nothing"
    assert not [p for p in tree(mix.a) if ".restored-" in p]
    mix.no_new_conflicts()


def test_a_file_deleted_by_hand_minutes_after_its_save_can_be_restored(mix: Mix) -> None:
    """Saved in a, copied to b, deleted in a at once: b's fresh copy is the last version."""
    mix.rig.start()
    write_file(mix.a / "new.txt", b"saved a minute ago", mtime=T0)
    mix.wait_everywhere("new.txt", b"saved a minute ago")
    (mix.a / "new.txt").unlink()
    mix.wait_everywhere("new.txt", None)

    items, _ = list_trash(mix.engine.locations())
    (item,) = [i for i in items if i.path == "new.txt"]
    assert (item.location, item.reason) == (f"folder:{mix.b}", "deleted")
    restore(mix.engine.locations(), item.id)
    mix.wait_everywhere("new.txt", b"saved a minute ago")
    mix.no_new_conflicts()


def test_restore_onto_a_path_holding_another_file_lands_beside_it(mix: Mix) -> None:
    mix.rig.start()
    write_file(mix.a / "notes.txt", b"first", mtime=T0)
    mix.wait_everywhere("notes.txt", b"first")
    write_file(mix.b / "notes.txt", b"second, newer", mtime=T0 + 100)
    mix.wait_everywhere("notes.txt", b"second, newer")

    items, _ = list_trash(mix.engine.locations(), location=f"folder:{mix.a}")
    item = next(i for i in items if i.path == "notes.txt")
    assert item.reason == "overwritten"
    result = restore(mix.engine.locations(), item.id)
    assert result.path.startswith("notes.restored-") and result.path.endswith(".txt")
    assert len(result.path) == len("notes.restored-YYYYMMDD-HHMMSS.txt")
    mix.wait_everywhere(result.path, b"first")
    assert mix.everywhere("notes.txt", b"second, newer"), "a restore never overwrites"
    mix.no_new_conflicts()


def test_undo_the_last_minutes_restores_each_deleted_path_once(mix: Mix) -> None:
    mix.rig.start()
    write_file(mix.a / "old.txt", b"deleted long ago", mtime=T0)
    for n in range(3):
        write_file(mix.a / f"batch/{n}.txt", f"file {n}".encode(), mtime=T0 + n)
    for n in range(3):  # each file may arrive in a different batch: wait for all of them
        mix.wait_everywhere(f"batch/{n}.txt", f"file {n}".encode())
    mix.wait_everywhere("old.txt", b"deleted long ago")
    (mix.b / "old.txt").unlink()  # a's versions, the user's, go to a's trash
    mix.wait_everywhere("old.txt", None)
    time.sleep(1.1)  # the window below must start after that delete (times are compared)
    since = time.time()
    for n in range(3):
        (mix.b / f"batch/{n}.txt").unlink()
    for n in range(3):
        mix.wait_everywhere(f"batch/{n}.txt", None)

    results = restore_window(mix.engine.locations(), since, time.time())
    assert sorted(r.path for r in results) == ["batch/0.txt", "batch/1.txt", "batch/2.txt"]
    assert all(not r.error for r in results)
    for n in range(3):
        mix.wait_everywhere(f"batch/{n}.txt", f"file {n}".encode())
    assert mix.everywhere("old.txt", None), "a delete before the window stays deleted"
    assert not [p for t in mix.trees() for p in t if ".restored-" in p]


def _make_conflict(mix: Mix) -> tuple[str, str]:
    """Edit report.txt in a and b while the engine is stopped: b's newer edit wins."""
    mix.rig.start()
    write_file(mix.a / "report.txt", b"original", mtime=T0)
    mix.wait_everywhere("report.txt", b"original")
    mix.rig.stop()
    write_file(mix.a / "report.txt", b"a's edit", mtime=T0 + 100)
    write_file(mix.b / "report.txt", b"b's newer edit", mtime=T0 + 200)
    mix.rig.start()
    mix.wait_everywhere("report.txt", b"b's newer edit")
    copies = [p for p in tree(mix.a) if is_conflict_copy(p)]
    assert len(copies) == 1, tree(mix.a)
    mix.wait_everywhere(copies[0], b"a's edit")
    return "report.txt", copies[0]


def test_keeping_the_conflict_copy_makes_it_current_everywhere(mix: Mix) -> None:
    path, copy = _make_conflict(mix)
    items = list_conflicts(mix.engine.locations())
    assert [(i.path, i.copy) for i in items] == [(path, copy)]
    item = items[0]
    assert (item.mtime, item.size) == (T0 + 100, len(b"a's edit"))
    assert (item.current_mtime, item.current_size) == (T0 + 200, len(b"b's newer edit"))
    assert {"id", "path", "copy", "location", "mtime", "size"} <= set(item.as_json())

    resolve(mix.engine.locations(), item.id, "copy")
    mix.wait_everywhere(path, b"a's edit")
    mix.wait_everywhere(copy, None)
    assert list_conflicts(mix.engine.locations()) == []
    mix.no_new_conflicts()
    trashed, _ = list_trash(mix.engine.locations(), location=item.location)
    replaced = [i for i in trashed if i.path == path and i.reason == "overwritten"]
    assert any(i.size == len(b"b's newer edit") for i in replaced), trashed


def test_keeping_the_current_version_removes_the_copy_everywhere(mix: Mix) -> None:
    path, copy = _make_conflict(mix)
    (item,) = list_conflicts(mix.engine.locations())
    resolve(mix.engine.locations(), item.id, "current")
    mix.wait_everywhere(copy, None)
    assert mix.everywhere(path, b"b's newer edit")
    mix.no_new_conflicts()


def test_an_unknown_id_is_one_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "f"
    root.mkdir()
    locations = [open_location(f"folder:{root}")]
    with pytest.raises(UnknownVersion, match="no version in the trash has the id 'nope'"):
        restore(locations, "nope")
    with pytest.raises(UnknownVersion, match="no conflict copy has the id 'nope'"):
        resolve(locations, "nope", "copy")


def test_versions_trashed_before_notes_were_kept_are_still_listed(tmp_path: Path) -> None:
    root = tmp_path / "f"
    write_file(root / "still-here.txt", b"current")
    write_file(root / ".filesync/trash/20260101-120000/gone.txt", b"old", mtime=T0)
    write_file(root / ".filesync/trash/20260101-120000/still-here.txt", b"older")
    items, total = list_trash([open_location(f"folder:{root}")])
    assert total == 2
    reasons = {i.path: i.reason for i in items}
    assert reasons == {"gone.txt": "deleted", "still-here.txt": "overwritten"}
    stamp = time.mktime(time.strptime("20260101-120000 UTC", "%Y%m%d-%H%M%S %Z"))
    assert {i.trashed_at for i in items} == {stamp - time.timezone}


def test_trash_pages_and_filters(tmp_path: Path) -> None:
    root = tmp_path / "f"
    for n in range(5):
        write_file(root / f".filesync/trash/2026010{n + 1}-000000/v{n}.txt", b"x")
    locations = [open_location(f"folder:{root}")]
    page, total = list_trash(locations, offset=1, limit=2)
    assert total == 5
    assert [i.path for i in page] == ["v3.txt", "v2.txt"], "newest first"
    jan3 = 1767398400.0  # 2026-01-03 00:00 UTC
    page, total = list_trash(locations, since=jan3, until=jan3 + 86400)
    assert [i.path for i in page] == ["v3.txt", "v2.txt"] and total == 2
    assert list_trash(locations, location="elsewhere") == ([], 0)
