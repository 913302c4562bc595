"""One location failing or stalling never keeps the change from the others (issue 9, 5 and 6).

Real folders, real watchdog observers; the read-only case runs FileSync in a child process
without the capabilities that let root write anywhere, so the permissions bind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.engine.status import LocationState
from tests.engine_fixtures import Rig
from tests.helpers import describe_trees, tree, trees_equal, wait_until, write_file

SETPRIV = shutil.which("setpriv")


def test_a_folder_in_the_way_does_not_stop_the_other_locations(rig: Rig) -> None:
    a, b, c = rig.roots
    engine = rig.start()
    (b / "report.txt").mkdir()  # an empty folder where the file should go
    write_file(a / "report.txt", "quarterly")
    wait_until(lambda: tree(c).get("report.txt") == b"quarterly", message="c gets the change")

    def b_reports_it() -> bool:
        row = next(r for r in engine.status().locations if r.key == f"folder:{b}")
        return row.state is LocationState.ERROR and "report.txt" in row.last_error

    wait_until(b_reports_it, message="b's status names the path")
    row = next(r for r in engine.status().locations if r.key == f"folder:{b}")
    assert "folder" in row.last_error and "move" in row.last_error, row.last_error
    assert engine.index is not None
    assert "report.txt" not in engine.index.load(f"folder:{b}"), "b's row claims the copy"

    (b / "report.txt").rmdir()
    wait_until(lambda: trees_equal(a, b, c), 60, lambda: describe_trees(a, b, c))
    wait_until(lambda: not b_reports_it(), message="b's error cleared")


@pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None, reason="needs root and setpriv to drop DAC override"
)
def test_a_read_only_location_catches_up_once_writable(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    for root in (a, b, c):
        (root / ".filesync").mkdir(parents=True)
    b.chmod(0o555)
    log = tmp_path / "filesync.log"
    command = [SETPRIV or "setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    command += [sys.executable, "-m", "app", "run", f"folder:{a}", f"folder:{b}", f"folder:{c}"]
    command += ["--state", str(tmp_path / "state"), "--debounce", "0.03"]
    with log.open("w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "watching" in log.read_text(), 60, log.read_text)
        write_file(a / "notes.txt", "new notes")
        wait_until(lambda: tree(c).get("notes.txt") == b"new notes", 30, "c gets the change")
        wait_until(lambda: "cannot write" in log.read_text(), 30, log.read_text)
        assert "notes.txt" not in tree(b)
        line = next(x for x in log.read_text().splitlines() if "cannot write" in x)
        assert "notes.txt" in line and "writable" in line, line
        b.chmod(0o755)
        wait_until(lambda: tree(b).get("notes.txt") == b"new notes", 60, "b catches up")
    finally:
        b.chmod(0o755)
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
