"""A file written slowly is copied once it settles, not at every size it passes (issue 9).

The writers are real processes appending to a file in a watched folder while the engine runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine_fixtures import Rig
from tests.helpers import describe_trees, tree, trees_equal, wait_until, write_file

MIB = 1 << 20


def _trash(root: Path) -> list[Path]:
    """The versions in ``root``'s trash (not the stamp folders' notes)."""
    trash = root / ".filesync/trash"
    notes = set(trash.glob("*/.filesync"))
    return [p for p in trash.rglob("*") if p.is_file() and p not in notes]


def _writer(tmp: Path, target: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start ``tests.slow_writer`` with its output in a file (never an unread pipe)."""
    out = open(tmp / f"writer-{target.name}.log", "wb")  # noqa: SIM115 - closed by the caller
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.slow_writer", str(target), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).parent.parent,
    )
    out.close()
    return proc


@pytest.mark.parametrize(("mode", "most_copies"), [("open", 1), ("reopen", 2)])
def test_file_written_in_chunks_is_copied_once_it_settles(
    rig: Rig, mode: str, most_copies: int
) -> None:
    """30 chunks of 1 MiB over ~3 s: the others get the final file, no partial in any trash.

    ``open`` keeps the file open (one close at the end); ``reopen`` appends and closes per
    chunk, so the first chunk looks like an ordinary save and may be copied before the rest.
    """
    a, b, c = rig.roots
    engine = rig.start()
    target = a / "export.bin"
    writer = _writer(rig.tmp, target, mode, "30", str(MIB), "0.1")
    try:
        assert writer.wait(120) == 0
    finally:
        writer.kill()
        writer.wait()
    wait_until(
        lambda: trees_equal(a, b, c) and (b / "export.bin").stat().st_size == 30 * MIB,
        60,
        lambda: describe_trees(a, b, c),
    )
    assert engine.wait_idle(30)
    for root in (b, c):
        assert engine.writes(f"folder:{root}") <= most_copies, f"{root.name} got partial copies"
        assert _trash(root) == [], f"{root.name} trash keeps partial copies"


def test_file_that_never_closes_still_syncs_within_the_bound(rig: Rig) -> None:
    """A log appended without pause and never closed is copied every ``settle_bound`` s."""
    a, b, _ = rig.roots
    engine = rig.start(settle_bound=2.0)
    stop = rig.tmp / "stop"
    writer = _writer(rig.tmp, a / "busy.log", "endless", "0", str(16 * 1024), "0.05", str(stop))
    started = time.monotonic()
    try:
        wait_until(
            lambda: (b / "busy.log").stat().st_size >= 256 * 1024,
            30,
            "a partial copy of the growing log while it is still written",
        )
        assert writer.poll() is None, "the writer finished: the test proved nothing"
        copied_after = time.monotonic() - started
        stop.touch()
        assert writer.wait(60) == 0
    finally:
        writer.kill()
        writer.wait()
    wait_until(lambda: trees_equal(*rig.roots), 60, lambda: describe_trees(*rig.roots))
    assert engine.wait_idle(30)
    elapsed = time.monotonic() - started
    # One copy per bound while it grew, one when it settled (and slack for a slow machine).
    assert engine.writes(f"folder:{b}") <= elapsed / 2.0 + 3, f"copied {copied_after:.1f}s"


def test_a_users_version_is_trashed_but_not_the_engines_own_copies(rig: Rig) -> None:
    """Replacing a version a user made in a folder keeps it in that folder's trash; replacing
    the copy the engine wrote moments before does not (its original lives elsewhere)."""
    a, b, _ = rig.roots
    rig.start()
    write_file(b / "made-in-b.txt", "b's original")
    write_file(a / "made-in-a.txt", "a's original")
    wait_until(lambda: trees_equal(*rig.roots), 30, lambda: describe_trees(*rig.roots))
    write_file(a / "made-in-b.txt", "edited in a")
    write_file(a / "made-in-a.txt", "edited in a too")
    wait_until(
        lambda: all(
            tree(r).get("made-in-b.txt") == b"edited in a"
            and tree(r).get("made-in-a.txt") == b"edited in a too"
            for r in rig.roots
        ),
        30,
        lambda: describe_trees(*rig.roots),
    )
    assert [p.read_bytes() for p in _trash(b)] == [b"b's original"]
    assert _trash(rig.roots[2]) == []


def test_hard_linked_file_written_slowly_waits_under_every_name(rig: Rig) -> None:
    """An edit through one name of a hard-linked file reaches its other names: those wait for
    the file to settle too, instead of being copied at each size it passes."""
    a, b, c = rig.roots
    write_file(a / "x.bin", b"before")
    os.link(a / "x.bin", a / "y.bin")
    engine = rig.start()
    wait_until(lambda: trees_equal(a, b, c), 30, lambda: describe_trees(a, b, c))
    before = engine.writes(f"folder:{b}")
    writer = _writer(rig.tmp, a / "x.bin", "open", "20", str(MIB), "0.1")
    try:
        assert writer.wait(120) == 0
    finally:
        writer.kill()
        writer.wait()
    wait_until(
        lambda: trees_equal(a, b, c) and (b / "y.bin").stat().st_size == 20 * MIB,
        60,
        lambda: describe_trees(a, b, c),
    )
    assert engine.wait_idle(30)
    assert engine.writes(f"folder:{b}") - before <= 2, "partial copies under the other name"
    assert _trash(b) == [], "b's trash keeps partial copies"
