"""SIGTERM and SIGINT stop FileSync within seconds at any point, even in a long initial sync.

Real subprocesses of ``python -m app run`` over real folders; the stop is measured from the
signal to the exit of the process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.ftp_server import ThreadedFtpServer
from tests.helpers import indexed, tree, wait_until, write_file

#: "Within a few seconds", with room for a loaded 2-core machine.
STOP_WITHIN = 8.0


def make_files(root: Path, count: int) -> None:
    """``count`` small files in folders of 100."""
    for n in range(count):
        folder = root / f"d{n // 100:03d}"
        if n % 100 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{n:05d}.txt").write_bytes(b"%d\n" % n * 20)


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def temp_files(*roots: Path) -> list[str]:
    """Every FileSync temp file below the roots, ``.filesync/`` included."""
    return [
        os.path.join(d, name)
        for root in roots
        for d, _, names in os.walk(root)
        for name in names
        if name.startswith(".filesync-tmp-")
    ]


def user_files(root: Path) -> set[str]:
    return set(tree(root))


def start(log: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "app", "run", *args], stdout=out, stderr=out)


def stop_and_time(proc: subprocess.Popen[bytes], signum: int) -> float:
    began = time.monotonic()
    proc.send_signal(signum)
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return time.monotonic() - began


def test_signals_stop_a_long_initial_sync_within_seconds_and_cleanly(tmp_path: Path) -> None:
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    a.mkdir()
    b.mkdir()
    total = 20_000
    make_files(a, total)
    args = [f"folder:{a}", f"folder:{b}", "--state", str(state)]

    # SIGTERM in the middle of the initial sync of a service (watch mode).
    log = tmp_path / "first.log"
    proc = start(log, *args)
    wait_until(lambda: count_files(b) > 300, 60, "the initial sync to be under way")
    took = stop_and_time(proc, signal.SIGTERM)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert took < STOP_WITHIN, f"SIGTERM took {took:.1f} s\n{text[-3000:]}"
    assert "Traceback" not in text
    landed = user_files(b)
    assert 0 < len(landed) < total, "the stop did not interrupt the initial sync"
    assert temp_files(a, b) == []
    assert indexed(state, b) == landed  # every copy that landed is recorded, nothing more

    # Ctrl-C (SIGINT) in the middle of the next start, which continues the sync.
    log = tmp_path / "second.log"
    proc = start(log, *args)
    wait_until(lambda: count_files(b) > len(landed) + 300, 60, "the second sync to be under way")
    took = stop_and_time(proc, signal.SIGINT)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert took < STOP_WITHIN, f"SIGINT took {took:.1f} s\n{text[-3000:]}"
    assert "Traceback" not in text
    assert temp_files(a, b) == []
    assert indexed(state, b) == user_files(b)

    # A restart converges: everything copied once, nothing deleted, no conflict copies.
    result = subprocess.run(
        [sys.executable, "-m", "app", "run", *args, "--once"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert user_files(a) == user_files(b)
    assert len(user_files(a)) == total
    assert not [p for p in user_files(a) if "sync-conflict" in p]


def test_sigterm_in_the_middle_of_a_big_copy_removes_its_temp_file(tmp_path: Path) -> None:
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    b.mkdir()
    big = write_file(a / "big.bin", b"")
    with open(big, "r+b") as f:  # sparse: quick to make, slow enough to copy
        f.truncate(4 << 30)
    log = tmp_path / "run.log"
    proc = start(log, f"folder:{a}", f"folder:{b}", "--state", str(state), "--once")
    wait_until(lambda: temp_files(b), 60, "the copy to be under way")
    took = stop_and_time(proc, signal.SIGTERM)
    text = log.read_text()
    assert took < STOP_WITHIN, f"SIGTERM took {took:.1f} s\n{text[-3000:]}"
    assert proc.returncode == 1, text[-3000:]  # --once: stopped before everything was synced
    assert "stopped before the sync finished" in text
    assert "Traceback" not in text
    assert temp_files(a, b) == []
    assert user_files(b) == set()
    assert indexed(state, b) == set()


def test_quit_in_the_desktop_app_does_not_wait_for_the_initial_sync(tmp_path: Path) -> None:
    from app.engine.engine import Engine
    from app.engine.index import StateIndex
    from app.engine.settings import EngineSettings
    from app.locations import open_location
    from app.ui.facade import SyncFacade

    a, b = tmp_path / "a", tmp_path / "b"
    b.mkdir()
    total = 10_000
    make_files(a, total)
    index = StateIndex(tmp_path / "state" / "index.sqlite")
    locations = [open_location(f"folder:{a}"), open_location(f"folder:{b}")]
    facade = SyncFacade(Engine(locations, index, EngineSettings()))
    facade.start()
    try:
        wait_until(lambda: count_files(b) > 300, 60, "the initial sync to be under way")
    finally:
        began = time.monotonic()
        facade.stop()
        took = time.monotonic() - began
    assert took < STOP_WITHIN, f"Quit took {took:.1f} s"
    landed = user_files(b)
    assert 0 < len(landed) < total, "Quit waited for the initial sync to finish"
    assert temp_files(a, b) == []
    assert indexed(tmp_path / "state", b) == landed


def test_stop_in_the_middle_of_an_ftp_upload_removes_the_temp_file(
    tmp_path: Path, ftp_server: ThreadedFtpServer
) -> None:
    import threading

    from app.engine.engine import Engine
    from app.engine.index import StateIndex
    from app.engine.settings import EngineSettings
    from app.locations import open_location

    a = tmp_path / "a"
    big = write_file(a / "big.bin", b"")
    with open(big, "r+b") as f:
        f.truncate(2 << 30)
    index = StateIndex(tmp_path / "state" / "index.sqlite")
    locations = [open_location(f"folder:{a}"), open_location(ftp_server.url())]
    engine = Engine(locations, index, EngineSettings())
    starter = threading.Thread(target=engine.start, kwargs={"watch": False})
    starter.start()
    try:
        wait_until(lambda: temp_files(ftp_server.root), 60, "the upload to be under way")
    finally:
        began = time.monotonic()
        engine.request_stop()
        starter.join(60)
        engine.stop()
        took = time.monotonic() - began
        ftp_rows = index.load(locations[1].key)
        index.close()
    assert not starter.is_alive()
    assert took < STOP_WITHIN, f"the stop took {took:.1f} s"
    assert temp_files(ftp_server.root) == []
    assert ftp_rows == {}
    assert not (ftp_server.root / "big.bin").exists()
