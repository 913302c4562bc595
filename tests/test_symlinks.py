"""Symbolic links inside a location: never followed, never written through, never read as deletes.

The story behind these tests: a user moves ``photos/`` to another disk and leaves a link in its
place. FileSync must not write other locations' files through that link, and must not take the
photos it can no longer see there as deleted (which would delete them everywhere else).
"""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path

import pytest

from app.errors import LinkedPath
from app.locations import LocationOptions, open_location
from app.locations.folder.location import FolderLocation
from tests.engine_fixtures import Rig
from tests.helpers import tree, trees_equal, wait_until, write_file
from tests.links import swap_in_link

MTIME = 1_700_000_000 * 10**9


def folder(root: Path) -> FolderLocation:
    root.mkdir(exist_ok=True)
    loc = open_location(f"folder:{root}", LocationOptions())
    assert isinstance(loc, FolderLocation)
    loc.open()
    loc.adopt(has_history=False)
    return loc


def everything(root: Path) -> dict[str, bytes]:
    """Every file below ``root``, FileSync's own included (the trash, temp files)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def link_warnings(caplog: pytest.LogCaptureFixture, link: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and f"{link} is a symbolic link" in r.getMessage()
    ]


# ----- the location never goes through a link ----------------------------------------------


def test_write_into_a_symlinked_folder_is_refused_and_lands_nowhere(tmp_path: Path) -> None:
    loc = folder(tmp_path / "root")
    outside = tmp_path / "disk"
    outside.mkdir()
    (loc.root / "photos").symlink_to(outside)
    for path in ("photos/new.jpg", "photos/deeper/new.jpg"):
        with pytest.raises(LinkedPath) as info:
            loc.write(path, io.BytesIO(b"must not land outside"), MTIME)
        assert info.value.link == "photos"
        assert "photos is a symbolic link" in str(info.value)
    assert list(outside.iterdir()) == []
    assert loc.links() == {"photos"}
    assert everything(loc.root) == {}  # no temp file left behind either


def test_delete_and_rename_under_a_symlinked_folder_are_refused(tmp_path: Path) -> None:
    loc = folder(tmp_path / "root")
    outside = tmp_path / "disk"
    write_file(outside / "keep.jpg", "a photo on the other disk")
    (loc.root / "photos").symlink_to(outside)
    write_file(loc.root / "a.txt", "inside")
    with pytest.raises(LinkedPath):
        loc.delete("photos/keep.jpg")
    with pytest.raises(LinkedPath):
        loc.rename("photos/keep.jpg", "moved.jpg")
    with pytest.raises(LinkedPath):
        loc.rename("a.txt", "photos/a.txt")
    with pytest.raises(LinkedPath):
        loc.rename("a.txt", "photos/new/a.txt")
    assert everything(outside) == {"keep.jpg": b"a photo on the other disk"}
    assert everything(loc.root) == {"a.txt": b"inside"}  # nothing moved in, nothing trashed


def test_a_link_at_a_file_name_is_neither_followed_nor_replaced(tmp_path: Path) -> None:
    loc = folder(tmp_path / "root")
    target = write_file(tmp_path / "elsewhere.txt", "not ours")
    link = loc.root / "l.txt"
    link.symlink_to(target)
    assert loc.stat("l.txt") is None
    with pytest.raises(LinkedPath):
        loc.write("l.txt", io.BytesIO(b"new"), MTIME)
    with pytest.raises(LinkedPath):
        loc.delete("l.txt")
    with pytest.raises(LinkedPath), loc.open_read("l.txt"):
        pass
    assert link.is_symlink() and target.read_bytes() == b"not ours"
    assert loc.links() == {"l.txt"}


def test_scan_and_stat_report_links_until_the_real_folder_is_back(tmp_path: Path) -> None:
    loc = folder(tmp_path / "root")
    write_file(loc.root / "photos/x.jpg", "x")
    write_file(loc.root / "top.txt", "top")
    assert set(loc.scan()) == {"photos/x.jpg", "top.txt"} and loc.links() == frozenset()
    swap_in_link(loc.root / "photos", tmp_path / "disk")
    assert set(loc.scan()) == {"top.txt"}
    assert loc.links() == {"photos"}
    assert loc.scan("photos") == {} and loc.stat("photos/x.jpg") is None
    assert loc.links() == {"photos"}
    (loc.root / "photos").unlink()
    (tmp_path / "disk").rename(loc.root / "photos")
    assert loc.stat("photos/x.jpg") is not None
    assert loc.links() == frozenset()


# ----- the engine holds what a link hides -------------------------------------------------


def test_write_through_a_symlinked_folder_never_lands_outside_the_root(
    rig: Rig, tmp_path: Path
) -> None:
    a, b, c = rig.roots
    outside = tmp_path / "disk"
    outside.mkdir()
    (b / "photos").symlink_to(outside)
    write_file(a / "photos/new.jpg", "from a")
    write_file(a / "photos/deeper/more.jpg", "from a too")
    write_file(a / "top.txt", "top")
    assert rig.once()
    assert list(outside.iterdir()) == []
    assert tree(b) == {"top.txt": b"top"}
    assert tree(c) == tree(a) and set(tree(a)) == {
        "photos/new.jpg",
        "photos/deeper/more.jpg",
        "top.txt",
    }


def test_files_under_a_folder_that_became_a_link_are_not_deleted_elsewhere(
    rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, c = rig.roots
    photos = {"photos/1.jpg": b"one", "photos/sub/2.jpg": b"two"}
    for path, data in photos.items():
        write_file(a / path, data)
    write_file(a / "top.txt", "top")
    assert rig.once()
    swap_in_link(b / "photos", tmp_path / "disk")
    write_file(a / "after.txt", "other paths still sync")
    caplog.set_level(logging.WARNING)
    assert rig.once()
    for root in (a, c):
        assert tree(root) == {**photos, "top.txt": b"top", "after.txt": b"other paths still sync"}
    assert tree(b) == {"top.txt": b"top", "after.txt": b"other paths still sync"}
    assert everything(tmp_path / "disk") == {"1.jpg": b"one", "sub/2.jpg": b"two"}
    warnings = link_warnings(caplog, "photos")
    assert len(warnings) == 1, warnings
    assert "not deleted elsewhere" in warnings[0] and ".filesyncignore" in warnings[0]
    assert str(b) in warnings[0]


def test_a_linked_folder_catches_up_once_the_real_folder_is_back(rig: Rig, tmp_path: Path) -> None:
    a, b, c = rig.roots
    write_file(a / "photos/1.jpg", "one")
    write_file(a / "photos/2.jpg", "two")
    assert rig.once()
    disk = tmp_path / "disk"
    swap_in_link(b / "photos", disk)
    write_file(a / "photos/1.jpg", "one, edited while b's folder was a link")
    (a / "photos/2.jpg").unlink()
    write_file(a / "photos/3.jpg", "three")
    assert rig.once()
    assert tree(c) == tree(a)
    (b / "photos").unlink()
    disk.rename(b / "photos")
    assert rig.once()
    assert trees_equal(a, b, c)
    assert tree(b) == {
        "photos/1.jpg": b"one, edited while b's folder was a link",
        "photos/3.jpg": b"three",
    }


def test_files_under_a_linked_folder_stay_in_the_zip(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = tmp_path / "a"
    a.mkdir()
    archive = tmp_path / "sync.zip"
    rig = Rig(tmp_path, [a], extra_specs=[f"zip:{archive}"])
    try:
        write_file(a / "photos/1.jpg", "one")
        write_file(a / "photos/sub/2.jpg", "two")
        write_file(a / "top.txt", "top")
        assert rig.once()
        swap_in_link(a / "photos", tmp_path / "disk")
        caplog.set_level(logging.WARNING)
        assert rig.once()
        with zipfile.ZipFile(archive) as zf:
            assert sorted(zf.namelist()) == ["photos/1.jpg", "photos/sub/2.jpg", "top.txt"]
        assert len(link_warnings(caplog, "photos")) == 1
    finally:
        rig.stop()


def test_a_folder_replaced_by_a_link_while_running_is_held_and_reported_once(
    rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, c = rig.roots
    for n in range(10):
        write_file(a / f"photos/{n}.jpg", f"photo {n}")
    caplog.set_level(logging.WARNING)
    engine = rig.start()
    wait_until(lambda: trees_equal(*rig.roots), message="initial sync")
    swap_in_link(b / "photos", tmp_path / "disk")
    write_file(b / "marker.txt", "after the link")  # its arrival shows the link was seen
    wait_until(lambda: (a / "marker.txt").exists() and (c / "marker.txt").exists())
    engine.sync_now()
    engine.sync_now()
    assert engine.wait_idle(60)
    assert len(tree(a)) == len(tree(c)) == 11, tree(a)
    assert len(link_warnings(caplog, "photos")) == 1
    write_file(a / "photos/new.jpg", "new while linked")
    wait_until((c / "photos/new.jpg").exists, message="new photo in c")
    assert engine.wait_idle(60)
    assert not (tmp_path / "disk/new.jpg").exists()
    assert len(tree(a)) == len(tree(c)) == 12


def test_pruning_the_trash_never_deletes_through_a_symlinked_trash_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    precious = write_file(outside / "20000101-000000" / "precious.txt", "not FileSync's")
    root = tmp_path / "root"
    (root / ".filesync").mkdir(parents=True)
    (root / ".filesync" / "trash").symlink_to(outside, target_is_directory=True)
    loc = folder(root)
    loc.adopt(has_history=True)  # prunes the trash at start
    loc.housekeeping()  # and with every periodic rescan
    assert precious.read_text() == "not FileSync's"
