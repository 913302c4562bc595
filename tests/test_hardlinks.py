"""Hard links inside one folder location: two names of one file.

FileSync syncs each name as its own file (like rsync without ``-H``). What must hold: an edit
made through one name reaches the other name's copies elsewhere at once (the OS reports the
change under one name only), and nothing FileSync does to one name makes the other look edited
(its ctime changes with the link count), which would turn a later edit elsewhere into a false
conflict.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.engine.conflicts import is_conflict_copy
from app.locations.folder.location import FolderLocation
from tests.engine_fixtures import Rig
from tests.helpers import describe_trees, tree, trees_equal, wait_until, write_file


def settled(rig: Rig) -> None:
    """All roots equal and the engine idle (the echoes of its own writes handled too)."""
    assert rig.engine is not None
    wait_until(lambda: trees_equal(*rig.roots), message=lambda: describe_trees(*rig.roots))
    wait_until(lambda: rig.engine is not None and rig.engine.wait_idle(1), 30, "engine idle")


def conflict_copies(*roots: Path) -> list[str]:
    return [f"{r.name}/{p}" for r in roots for p in tree(r) if is_conflict_copy(p)]


def test_an_edit_through_one_hard_link_reaches_the_other_names_copies(rig: Rig) -> None:
    a, b, c = rig.roots
    write_file(a / "x.txt", "version 1")
    os.link(a / "x.txt", a / "y.txt")
    rig.start()
    settled(rig)
    with open(a / "x.txt", "r+b") as f:  # in place, as many editors and tools save
        f.write(b"version 2, written through x")
        f.truncate()
    for root in (b, c):
        for name in ("x.txt", "y.txt"):
            wait_until(
                lambda r=root, n=name: tree(r).get(n) == b"version 2, written through x",
                20,  # far below the 15-minute rescan that used to be the only way there
                f"{root.name}/{name} updated",
            )
    assert conflict_copies(a, b, c) == []


def test_changes_arriving_at_one_hard_link_make_no_false_conflict_at_the_other(rig: Rig) -> None:
    a, b, c = rig.roots
    write_file(a / "x.txt", "shared version")
    os.link(a / "x.txt", a / "y.txt")
    rig.start()
    settled(rig)
    write_file(b / "x.txt", "x edited in b")  # replaces a/x.txt: the link in a is split
    settled(rig)
    (c / "x.txt").unlink()  # and the delete moves a/x.txt to the trash
    settled(rig)
    write_file(b / "y.txt", "y edited in b")  # only b changed y: no conflict anywhere
    wait_until(lambda: tree(a).get("y.txt") == b"y edited in b", message="y.txt in a")
    settled(rig)
    assert conflict_copies(a, b, c) == []
    assert tree(a) == {"y.txt": b"y edited in b"}


def test_a_folder_knows_the_other_names_of_a_hard_linked_file(tmp_path: Path) -> None:
    loc = FolderLocation(tmp_path)
    loc.open()
    loc.adopt(has_history=False)
    write_file(tmp_path / "x.txt", "one file")
    (tmp_path / "sub").mkdir()
    os.link(tmp_path / "x.txt", tmp_path / "sub" / "y.txt")
    write_file(tmp_path / "single.txt", "alone")
    loc.scan()
    assert loc.other_names("x.txt") == {"sub/y.txt"}
    assert loc.other_names("sub/y.txt") == {"x.txt"}
    assert loc.other_names("single.txt") == frozenset()
    os.replace(tmp_path / "single.txt", tmp_path / "x.txt")  # x is now another file
    loc.stat("x.txt")
    assert loc.other_names("sub/y.txt") == frozenset() and loc.other_names("x.txt") == frozenset()
