"""A folder renamed in a watched folder is renamed in the others, never re-copied (issue 9)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.engine_fixtures import Rig
from tests.helpers import describe_trees, trees_equal, wait_until, write_file

FILES = 500


def _inodes(root: Path, folder: str) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in (root / folder).iterdir()}


def test_renamed_tree_of_500_files_arrives_as_renames(rig: Rig) -> None:
    """watchdog reports a folder move and then one synthetic move per file; when a batch closed
    between them, the folder's two trees were planned alone: 500 copies and 500 deletes per
    location. A tiny debounce makes that split likely, so several moves in a row are checked.
    """
    a, b, c = rig.roots
    for n in range(FILES):
        write_file(a / f"dir0/f{n:03}.txt", f"file {n}", mtime=1_700_000_000)
    engine = rig.start(debounce=0.001)
    wait_until(lambda: trees_equal(*rig.roots), 60, lambda: describe_trees(*rig.roots))
    keys = [f"folder:{r}" for r in (b, c)]
    writes = [engine.writes(k) for k in keys]
    for move in range(1, 6):
        before = {r: _inodes(r, f"dir{move - 1}") for r in (b, c)}
        os.rename(a / f"dir{move - 1}", a / f"dir{move}")
        wait_until(
            lambda move=move: (
                all(
                    (r / f"dir{move}").is_dir() and not (r / f"dir{move - 1}").exists()
                    for r in (b, c)
                )
                and trees_equal(*rig.roots)
            ),
            60,
            lambda: describe_trees(*rig.roots),
        )
        assert engine.wait_idle(30)
        for r in (b, c):
            assert _inodes(r, f"dir{move}") == before[r], f"move {move}: {r.name} re-copied"
        assert [engine.writes(k) for k in keys] == writes, f"move {move}: files were copied"
