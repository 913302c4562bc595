"""A restart over a large tree skips planning for paths every location holds as indexed.

That fast path (and ``--once`` reusing the sync's own listing for its convergence check) must
never skip what the planner would act on. Each test changes one path among many unchanged ones
while FileSync is stopped and checks that the next start still acts on it exactly as before.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from app.cli import main
from app.engine.fastpath import every_location_in_step
from app.locations.base import FileMeta
from tests.engine_fixtures import Rig
from tests.helpers import describe_trees, tree, trees_equal, write_file

T = 1_700_000_000  # a fixed past mtime, in seconds
MANY = 300


def synced_tree(rig: Rig, *, equal: bool = True) -> None:
    """``MANY`` files in a few folders, synced to all three roots by one run."""
    for n in range(MANY):
        write_file(rig.roots[n % 3] / f"d{n % 7}" / f"f{n:03d}.txt", f"file {n}", mtime=T)
    assert rig.once()
    assert trees_equal(*rig.roots) or not equal, describe_trees(*rig.roots)


def test_a_delete_made_while_stopped_is_propagated_among_unchanged_files(rig: Rig) -> None:
    a, b, c = rig.roots
    synced_tree(rig)
    (b / "d3/f010.txt").unlink()
    assert rig.once()
    assert "d3/f010.txt" not in tree(a) and "d3/f010.txt" not in tree(c)
    assert len(tree(a)) == MANY - 1 and trees_equal(*rig.roots)


def test_a_same_size_same_mtime_edit_made_while_stopped_is_synced(rig: Rig) -> None:
    a, b, c = rig.roots
    synced_tree(rig)
    edited = c / "d2/f100.txt"
    before = edited.stat()
    edited.write_text("FILE 100")  # same size; the mtime is then put back to the very ns
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert edited.stat().st_size == before.st_size
    assert edited.stat().st_mtime_ns == before.st_mtime_ns
    assert rig.once()
    assert tree(a)["d2/f100.txt"] == tree(b)["d2/f100.txt"] == b"FILE 100"


def test_new_and_edited_files_made_while_stopped_are_synced(rig: Rig) -> None:
    a, b, c = rig.roots
    synced_tree(rig)
    write_file(a / "d1/new.txt", "new")
    write_file(b / "d4/f004.txt", "a longer edit", mtime=T + 60)
    assert rig.once()
    for root in (a, b, c):
        files = tree(root)
        assert files["d1/new.txt"] == b"new" and files["d4/f004.txt"] == b"a longer edit"


def test_an_ignored_folder_stays_out_and_is_synced_once_no_longer_ignored(rig: Rig) -> None:
    a, b, c = rig.roots
    write_file(a / ".filesyncignore", "build/\n")
    write_file(a / "build/out.o", "object")
    write_file(a / "src/x/build/deep.o", "deep object")
    synced_tree(rig, equal=False)
    assert "build/out.o" not in tree(b) and "src/x/build/deep.o" not in tree(c)
    write_file(b / "build/other.o", "b's object")
    assert rig.once()
    assert "build/other.o" not in tree(a)
    (a / ".filesyncignore").unlink()
    assert rig.once()
    for root in (a, b, c):
        files = tree(root)
        assert files["build/out.o"] == b"object" and files["build/other.o"] == b"b's object"
        assert files["src/x/build/deep.o"] == b"deep object"


def test_once_after_copies_checks_convergence_by_reading_the_locations_again(
    tmp_path: Path,
) -> None:
    """A run that copied files verifies them with a fresh scan; a run that only found every
    file in step reports converged from its own listing."""
    a, b = tmp_path / "a", tmp_path / "b"
    for n in range(50):
        write_file(a / f"f{n}.txt", f"{n}", mtime=T)
    b.mkdir()
    args = ["run", f"folder:{a}", f"folder:{b}", "--once", "--state", str(tmp_path / "s")]
    assert main(args) == 0
    assert trees_equal(a, b)
    assert main(args) == 0
    write_file(b / "f7.txt", "edited", mtime=T + 5)
    assert main(args) == 0
    assert tree(a)["f7.txt"] == b"edited"


def _slots(known: dict[str, dict[str, FileMeta]]) -> dict[str, Any]:
    """Hand-built slots: only what the fast path reads (index rows, stale, failing)."""
    return {
        key: SimpleNamespace(known=rows, stale=set(), failing={}) for key, rows in known.items()
    }


def test_every_location_in_step_only_when_each_holds_exactly_its_rows() -> None:
    m1, m2 = FileMeta(1, 10, 7), FileMeta(1, 10, 8)
    a = {"x": m1, "d/y": m2}
    b = {"x": m2, "d/y": m1}  # other inodes there: its own rows, not a's
    assert every_location_in_step({"a": dict(a), "b": dict(b)}, _slots({"a": a, "b": b}))
    assert every_location_in_step({}, {})
    assert not every_location_in_step(  # an edit: the tag changed
        {"a": dict(a), "b": {"x": m2, "d/y": m2}}, _slots({"a": a, "b": b})
    )
    assert not every_location_in_step(  # a file new in both, not yet in any row
        {"a": {**a, "n": m1}, "b": {**b, "n": m1}}, _slots({"a": a, "b": b})
    )
    assert not every_location_in_step(  # deleted in b while stopped
        {"a": dict(a), "b": {"x": m2}}, _slots({"a": a, "b": b})
    )
    assert not every_location_in_step(  # each as indexed, but b never got d/y
        {"a": dict(a), "b": {"x": m2}}, _slots({"a": a, "b": {"x": m2}})
    )
    stale = _slots({"a": a, "b": b})
    stale["b"].stale = {"x"}
    assert not every_location_in_step({"a": dict(a), "b": dict(b)}, stale)
    failing = _slots({"a": a, "b": b})
    failing["a"].failing = {"d/y": "disk full"}
    assert not every_location_in_step({"a": dict(a), "b": dict(b)}, failing)
