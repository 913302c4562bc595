"""A folder renamed in a watched folder is renamed in the others, never re-copied (issue 9)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from app.engine.engine import Engine
from tests.engine_fixtures import Rig
from tests.helpers import describe_trees, trees_equal, wait_until, write_file

FILES = 500


def _inodes(root: Path, folder: str) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in (root / folder).iterdir()}


def _wait_quiet(engine: Engine, quiet: float = 1.5) -> None:
    """Wait until the engine did nothing for ``quiet`` s: no activity recorded, nothing queued
    and no sync running, so the echoes of its own renames (some reach it only after watchdog's
    0.5 s wait for a move's other half) are done."""
    seen = {"last": -1.0, "since": time.monotonic()}

    def quiet_now() -> bool:
        status = engine.status()
        last = status.activity[-1].time if status.activity else 0.0
        if last != seen["last"] or status.syncing or status.pending or not engine.wait_idle(0):
            seen.update(last=last, since=time.monotonic())
        return time.monotonic() - seen["since"] >= quiet

    wait_until(quiet_now, 60, "the engine to go quiet")


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
        _wait_quiet(engine)
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
