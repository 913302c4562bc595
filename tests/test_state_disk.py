"""A full disk under the state folder: syncing pauses with one clear error and catches up.

These tests use a real full disk: a 2 MiB tmpfs mounted as the state folder and filled up with
a filler file; deleting the filler "returns the space". Mounting needs root (CI runs as root).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.status import EngineStatus
from app.ui.summary import TrayState, tray_state
from tests.disks import fill, small_tmpfs
from tests.engine_fixtures import Rig
from tests.helpers import describe_trees, indexed, tree, trees_equal, wait_until, write_file


@pytest.fixture
def small_state_disk(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/state`` as a 2 MiB tmpfs of its own (unmounted afterwards)."""
    with small_tmpfs(tmp_path / "state") as state:
        yield state


def status_of(rig: Rig) -> EngineStatus:
    assert rig.engine is not None
    return rig.engine.status()


def test_full_state_disk_pauses_then_catches_up_and_deletes_still_propagate(
    rig: Rig, small_state_disk: Path
) -> None:
    a, b, c = rig.roots
    write_file(a / "before.txt", "before")
    rig.start()
    wait_until(lambda: trees_equal(*rig.roots), message=lambda: describe_trees(*rig.roots))
    filler = fill(small_state_disk)

    # The first change after the disk filled lands, but its rows cannot be saved.
    write_file(a / "landed.txt", "landed while full")
    wait_until(lambda: "disk is full" in status_of(rig).error, message="state disk error")
    status = status_of(rig)
    assert tray_state(status) is TrayState.ERROR
    assert "syncing is paused" in status.error
    errors = [x for x in status.activity if x.action == "error"]
    assert len(errors) == 1, errors  # one clear error, not one per batch or per retry

    # While the disk is full nothing more is applied (it could not be recorded).
    write_file(a / "during.txt", "written while full")
    (a / "before.txt").unlink()
    wait_until(lambda: status_of(rig).pending >= 2, message="changes held while full")
    assert "during.txt" not in tree(b)
    assert "before.txt" in tree(c)

    # Space returns: the engine saves the index and catches up by itself.
    filler.unlink()
    # The save is retried with growing pauses (up to 30 s) for as long as the disk was full.
    wait_until(lambda: status_of(rig).error == "", 90, "the state disk error to clear")
    wait_until(
        lambda: (
            tree(b)
            == tree(c)
            == {"landed.txt": b"landed while full", "during.txt": b"written while full"}
        ),
        message=lambda: describe_trees(*rig.roots),
    )
    wait_until(
        lambda: all(
            indexed(rig.state.parent, r) == {"landed.txt", "during.txt"} for r in rig.roots
        ),
        message="the index has caught up with what landed",
    )

    # A file deleted while FileSync is stopped is deleted everywhere, not brought back.
    rig.stop()
    (b / "landed.txt").unlink()
    (c / "during.txt").unlink()
    assert rig.once()
    assert tree(a) == tree(b) == tree(c) == {}


def test_stop_with_a_full_state_disk_is_one_line_and_nonzero(
    tmp_path: Path, small_state_disk: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    log = tmp_path / "filesync.log"
    cmd = [sys.executable, "-m", "app", "run", f"folder:{a}", f"folder:{b}"]
    with open(log, "w") as out:
        proc = subprocess.Popen([*cmd, "--state", str(small_state_disk)], stdout=out, stderr=out)
    try:
        wait_until(lambda: "watching" in log.read_text(), message="first instance")
        filler = fill(small_state_disk)
        write_file(a / "x.txt", "x")
        wait_until(lambda: "disk is full" in log.read_text(), message="state disk error")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    text = log.read_text()
    assert proc.returncode == 1, text
    assert "Traceback" not in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("filesync: cannot save the state index"), text
    assert "disk is full" in last

    # With room again, a restart finds the copy that was not recorded and records it.
    filler.unlink()
    result = subprocess.run(
        [*cmd, "--once", "--state", str(small_state_disk)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert tree(b) == {"x.txt": b"x"}
    assert indexed(small_state_disk, b) == {"x.txt"}


def test_start_with_a_full_state_disk_is_one_clear_line(
    tmp_path: Path, small_state_disk: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_file(a / "x.txt", "x")
    cmd = [sys.executable, "-m", "app", "run", f"folder:{a}", f"folder:{b}", "--once"]

    def once() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cmd, "--state", str(small_state_disk)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    for first_run in (True, False):  # no index yet; an index from an earlier run
        filler = fill(small_state_disk)
        result = once()
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "state index" in lines[0] and "the disk is full" in lines[0], first_run
        assert tree(b) == ({} if first_run else {"x.txt": b"x"})
        filler.unlink()
        result = once()
        assert result.returncode == 0, result.stderr
        assert tree(b) == {"x.txt": b"x"}
