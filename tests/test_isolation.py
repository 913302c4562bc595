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
import time
from pathlib import Path

import pytest

from app.engine.engine import Engine
from app.engine.index import StateIndex
from app.engine.settings import EngineSettings
from app.engine.status import LocationState
from app.locations import LocationOptions, open_location
from tests.engine_fixtures import Rig
from tests.ftp_process import FtpProcess
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


def test_a_frozen_ftp_server_does_not_hold_up_the_folders(tmp_path: Path) -> None:
    """A SIGSTOPped server: folder to folder stays fast; the server catches up when resumed."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    server = FtpProcess(tmp_path / "ftp-root", tmp_path / "ftp-server.log")
    index = StateIndex(tmp_path / "state" / "index.sqlite")
    engine: Engine | None = None
    try:
        ftp = open_location(server.url(), LocationOptions(connect_timeout=8))
        engine = Engine(
            [open_location(f"folder:{a}"), open_location(f"folder:{b}"), ftp],
            index,
            EngineSettings(debounce=0.03, poll_interval=0.2),
        )
        write_file(a / "before.txt", "before the freeze")
        engine.start()
        assert trees_equal(a, b, server.root), describe_trees(a, b, server.root)

        server.freeze()
        latencies = []
        for n in range(4):
            started = time.monotonic()
            write_file(a / f"during-{n}.txt", f"written while the server is frozen {n}")
            wait_until(lambda n=n: (b / f"during-{n}.txt").exists(), 60, f"during-{n}.txt in b")
            latencies.append(time.monotonic() - started)
        print("a -> b latency while the FTP server is frozen:", [f"{t:.2f}s" for t in latencies])
        assert max(latencies) <= 3.0, latencies
        assert not (server.root / "during-0.txt").exists()
        row = next(r for r in engine.status().locations if r.kind == "ftp")
        assert row.state in (LocationState.ERROR, LocationState.UNAVAILABLE), row
        assert row.last_error, row

        server.thaw()
        wait_until(
            lambda: trees_equal(a, b, server.root), 90, lambda: describe_trees(a, b, server.root)
        )
        assert len(tree(server.root)) == 5
    finally:
        server.stop()
        if engine is not None:
            engine.stop()
        index.close()
