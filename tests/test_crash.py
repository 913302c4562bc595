"""kill -9 at any moment loses nothing: no partial file is ever visible, a restart converges."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.locations.base import TEMP_PREFIX
from tests.helpers import indexed, tree, wait_until, write_file

SIZE = 192 * 1024 * 1024


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{TEMP_PREFIX}*") if ".filesync" not in p.parent.parts]


def _run(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", "run", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def restart_once(a: Path, b: Path, state: Path) -> None:
    """Restart after the kill with ``--once``: it must converge (exit 0)."""
    args = ["run", f"folder:{a}", f"folder:{b}", "--once", "--state", str(state)]
    result = subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_kill_9_mid_copy_leaves_no_partial_file_and_restart_converges(tmp_path: Path) -> None:
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    a.mkdir()
    b.mkdir()
    big = a / "big.bin"
    block = os.urandom(1024 * 1024)
    with open(big, "wb") as f:
        for _ in range(SIZE // len(block)):
            f.write(block)
    proc = _run(f"folder:{a}", f"folder:{b}", "--state", str(state))
    caught_mid_copy = False
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if _temps(b):
                caught_mid_copy = True
                break
            if (b / "big.bin").exists():
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert caught_mid_copy, "the copy finished before the kill; make SIZE larger"
    # Whatever the moment of the kill, the real name holds nothing or the whole file.
    if (b / "big.bin").exists():
        assert (b / "big.bin").stat().st_size == SIZE
    restart_once(a, b, state)
    assert (b / "big.bin").stat().st_size == SIZE
    with open(a / "big.bin", "rb") as fa, open(b / "big.bin", "rb") as fb:
        while chunk := fa.read(1 << 20):
            assert chunk == fb.read(1 << 20)
    assert _temps(a) == [] and _temps(b) == [], "stray temp files after restart"


def test_kill_9_while_syncing_many_small_files_then_restart(tmp_path: Path) -> None:
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    a.mkdir()
    b.mkdir()
    for i in range(2000):
        d = a / f"d{i % 20}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}.txt").write_bytes(os.urandom(2048))
    proc = _run(f"folder:{a}", f"folder:{b}", "--state", str(state))
    try:
        wait_until(lambda: sum(1 for _ in b.rglob("f*.txt")) >= 200, 60, "copying to start")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    for path in b.rglob("f*.txt"):
        assert path.stat().st_size == 2048, f"partial file {path}"
    restart_once(a, b, state)
    files_a = {p.relative_to(a): p.read_bytes() for p in a.rglob("f*.txt")}
    files_b = {p.relative_to(b): p.read_bytes() for p in b.rglob("f*.txt")}
    assert files_a == files_b
    assert not list(b.rglob("*.sync-conflict-*")), "a restart must not invent conflicts"


def _kill_at_random_moments(a: Path, b: Path, state: Path, rng: random.Random) -> int:
    """Start a sync of ``a`` into ``b``; kill -9 it a random moment after its copies began.

    Returns how many files ``b`` held right after the kill.
    """
    before, old_temps = _copied(b), set(_temps(b))
    proc = _run(f"folder:{a}", f"folder:{b}", "--state", str(state))
    try:
        wait_until(
            lambda: proc.poll() is not None or set(_temps(b)) - old_temps or _copied(b) > before,
            60,
            "copying to start",
            interval=0.005,
        )
        time.sleep(rng.uniform(0, 0.5))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    return _copied(b)


def _copied(b: Path) -> int:
    return sum(1 for _ in b.glob("d*/f*"))


@pytest.mark.parametrize("speedup", [True, False], ids=["c", "python"])
def test_kill_9_at_random_points_of_batched_copies_never_shows_a_partial_file(
    tmp_path: Path, speedup: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many small files go to a folder in groups (temp files, one sync, renames, rows): a kill
    at any point leaves each name empty-handed or whole, and no row for a copy not on disk.
    Both ways a group can be written: by the C speedup (where built) and by Python alone."""
    if not speedup:
        monkeypatch.setenv("FILESYNC_PURE_PYTHON", "1")  # the killed processes inherit it
    a = tmp_path / "a"
    rng = random.Random(11)
    files: dict[str, bytes] = {}
    for i in range(3000):
        data = rng.randbytes(rng.randint(1, 8) * 1024)
        files[f"d{i % 15:02d}/f{i:04d}"] = data
        write_file(a / f"d{i % 15:02d}" / f"f{i:04d}", data)
    seen_mid_sync = 0
    for seed in range(4):
        b, state = tmp_path / f"b{seed}", tmp_path / f"state{seed}"
        b.mkdir()
        for kill in range(2):
            if _copied(b) == len(files):
                break  # the last run finished before its kill: nothing left to interrupt
            held = _kill_at_random_moments(a, b, state, random.Random(seed * 10 + kill))
            seen_mid_sync += 0 < held < len(files)
            for path in b.glob("d*/f*"):
                rel = path.relative_to(b).as_posix()
                assert path.read_bytes() == files[rel], f"{rel} is partial after kill {kill}"
            if (state / "index.sqlite").exists():
                missing = indexed(state, b) - {p.relative_to(b).as_posix() for p in b.glob("d*/f*")}
                assert not missing, f"rows for copies not on disk: {sorted(missing)[:5]}"
        restart_once(a, b, state)
        assert tree(b) == files
        assert not list(b.rglob("*.sync-conflict-*")), "a restart must not invent conflicts"
        assert _temps(b) == [], "stray temp files after restart"
    assert seen_mid_sync, "no kill landed in the middle of the sync; make the tree bigger"
