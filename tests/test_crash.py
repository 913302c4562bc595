"""kill -9 at any moment loses nothing: no partial file is ever visible, a restart converges."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from app.engine import copies
from app.locations.base import TEMP_PREFIX
from app.locations.folder import fastcopy
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


#: A ``filesync run`` whose folders note the groups they write, and which kills itself (-9) in
#: its large group (more than ``GROUP_FILES`` files) number ``argv[2]``, ``argv[3]`` times as
#: long after that group began as such a group takes: ``argv[4]`` seconds, or what its first
#: large group took. That moment is a guess (a group's time varies tenfold on a busy machine,
#: and a sleeping thread wakes late), so the sync may not outrun it: the next group waits for
#: the kill, which then comes at once; a kill the sync outran found every file on disk. It
#: notes each group as it begins and, before the kill, where the kill landed (JSON, in
#: ``argv[1]``).
_KILLED_IN_A_LARGE_GROUP = """
import json, os, runpy, signal, sys, threading, time
from app.engine import chunks, copies
from app.locations.folder import fastcopy
from app.locations.folder.location import FolderLocation

# Groups of 1,024 (two parts each) and chunks of 2,000 paths: 4,000 files make four large
# groups with a commit between the second and the third.
copies.GROUP_FILES_WAITED, chunks.COMMIT_EVERY = 1024, 2000

note, number, fraction, took = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:5])
sys.argv = ["filesync", *sys.argv[5:]]
sizes, large = [], []  # every group's size; [size, began, ended or None] of each large one
next_group = threading.Event()  # set as a group after the one to kill in would begin
last_note = threading.Lock()  # taken for good by the kill: no group's note may follow its note

def noting(**seen):
    with open(note, "w") as f:
        json.dump({"sizes": sizes, "c": fastcopy.SPEEDUP, **seen}, f)

def kill_later(group, after):
    held = next_group.wait(after)
    first = large[0][2] - large[0][1] if large[0][2] is not None else None
    last_note.acquire()
    noting(inside=group[2] is None, held=held, size=group[0], first_took=first)
    os.kill(os.getpid(), signal.SIGKILL)

def noted(real):
    def write(self, jobs, *, parallel_reads=False):
        if len(large) >= number:  # the kill is due before this group writes anything
            next_group.set()
            threading.Event().wait(60)
            with last_note:
                noting(error="no kill 60 s after the next group was held")
            os._exit(3)
        with last_note:  # a run that ends unkilled (with os._exit: no atexit) leaves this note
            sizes.append(len(jobs))
            noting()
        if len(jobs) <= copies.GROUP_FILES:
            return real(self, jobs, parallel_reads=parallel_reads)
        group = [len(jobs), time.monotonic(), None]
        large.append(group)
        if len(large) == number:
            after = fraction * (took or large[0][2] - large[0][1])
            threading.Thread(target=kill_later, args=(group, after), daemon=True).start()
        try:
            return real(self, jobs, parallel_reads=parallel_reads)
        finally:
            group[2] = time.monotonic()
    return write

FolderLocation.write_many = noted(FolderLocation.write_many)
FolderLocation.write_many_unsettled = noted(FolderLocation.write_many_unsettled)
runpy.run_module("app", run_name="__main__")
"""


@pytest.mark.parametrize("speedup", [True, False], ids=["c", "python"])
def test_kill_9_at_random_points_of_groups_of_1024_never_shows_a_partial_file(
    tmp_path: Path, speedup: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The large groups a folder takes while the engine waits for every answer (here a
    ``--once`` sync; groups of 1,024 files here, each written in two parts), killed at random
    points: every name holds nothing or its whole file, the index holds no row for a file not
    on disk, and a restart converges with no conflict copy.

    4,000 files go in groups of 1,024 and 976 (to the end of the first 2,000 paths, whose rows
    are then committed), then the same again. Three syncs are killed: in the second
    large group (its renames wait for the next group's pass), in the third (after a commit),
    and, timed by the first kill, in the first; each at a random moment from the first third,
    the second, or the rest of up to 1.2 times as long as a large group takes (its own sync's
    first, but for the kill in the first). A kill that late finds the next group held for it.
    """
    if not speedup:
        monkeypatch.setenv("FILESYNC_PURE_PYTHON", "1")  # the killed processes inherit it
    a = tmp_path / "a"
    rng = random.Random(7)
    files: dict[str, bytes] = {}
    for i in range(4000):
        files[f"d{i % 15:02d}/f{i:04d}"] = data = rng.randbytes(rng.randint(1, 8) * 1024)
        write_file(a / f"d{i % 15:02d}" / f"f{i:04d}", data)
    assert copies.GROUP_FILES < 900  # a large group is more than GROUP_FILES
    landed: list[dict[str, Any]] = []
    took = 0.0
    for run, (number, third) in enumerate([(2, 0), (3, 1), (1, 2)]):
        b, state, note = tmp_path / f"b{run}", tmp_path / f"state{run}", tmp_path / f"{run}.json"
        b.mkdir()
        fraction = (third + random.random()) * 0.4
        args = ["run", f"folder:{a}", f"folder:{b}", "--state", str(state), "--once"]
        timed_by = str(took if number == 1 else 0)
        killed = [_KILLED_IN_A_LARGE_GROUP, str(note), str(number), str(fraction), timed_by]
        with open(tmp_path / f"{run}.log", "wb") as log:
            child = subprocess.run(
                [sys.executable, "-c", *killed, *args],
                stdout=log,
                stderr=log,
                timeout=300,
                check=False,
            )
        seen = json.loads(note.read_text())
        assert child.returncode == -signal.SIGKILL, f"not killed in large group {number}: {seen}"
        assert seen["c"] == (speedup and fastcopy.SPEEDUP), f"speedup={speedup}, yet c={seen['c']}"
        landed.append({"group": number, "fraction": fraction, **seen})
        took = took or landed[0]["first_took"]
        on_disk, saved = tree(b), indexed(state, b)
        assert 0 < len(on_disk) < len(files), f"kill {landed[-1]} was not mid-sync"
        for rel, data in on_disk.items():
            assert data == files[rel], f"{rel} is partial after kill {landed[-1]}"
        assert saved <= set(on_disk), f"rows for copies not on disk after kill {landed[-1]}"
        assert saved or number < 3, f"nothing committed before kill {landed[-1]}"
        restart_once(a, b, state)
        assert tree(b) == files
        assert indexed(state, b) == set(files)
        assert not list(b.rglob("*.sync-conflict-*")), "a restart must not invent conflicts"
        assert _temps(b) == [], "stray temp files after restart"
    assert all(kill["size"] > copies.GROUP_FILES for kill in landed), landed
    assert any(kill["inside"] for kill in landed), f"no kill landed inside its group: {landed}"
