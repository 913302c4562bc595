"""A stop reaches the C copies of a group: the group ends within a call, and renames nothing.

A folder takes an initial sync's small files in groups of up to 1,024, which the C speedup
copies many files a call with the interpreter lock released; the engine's stop is checked
between two calls (``fastcopy._root_of``). A real ``filesync run`` gets a real SIGTERM while such
a group is being copied, each file's copy slowed down (a preloaded library makes every
``futimens`` wait 4 ms, as on a slow or network folder, and counts them): the group must end
with the call under way (not after the rest of its files), rename none of its files, leave no
temp file and no partial file, and the index must hold exactly the files on disk.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.locations.base import TEMP_PREFIX
from app.locations.folder import fastcopy
from tests.helpers import indexed, tree, write_file
from tests.preload import preload_library

#: "Within a few seconds", with room for a loaded 2-core machine (as ``test_stop_signals``).
STOP_WITHIN = 8.0

#: Every ``futimens`` (a copy stamping its mtime: one per file) waits 4 ms and is counted.
SLOW_STAMPS = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/stat.h>
#include <time.h>

long filesync_test_stamps;

int futimens(int fd, const struct timespec times[2]) {
    static int (*real)(int, const struct timespec[2]);
    if (real == NULL) real = dlsym(RTLD_NEXT, "futimens");
    struct timespec pause = {0, 4000000};
    nanosleep(&pause, NULL);
    __atomic_add_fetch(&filesync_test_stamps, 1, __ATOMIC_SEQ_CST);
    return real(fd, times);
}
"""

#: A ``filesync run`` whose folder notes its first group of more than ``GROUP_FILES`` files:
#: once 50 of its files are copied it sends itself a SIGTERM; it notes (JSON, in ``argv[1]``)
#: how many of the group's files were copied when the engine's stop was set and when the
#: group ended, how the group ended, and how many files the groups before it wrote.
_STOPPED_IN_A_GROUP = """
import ctypes, json, os, runpy, signal, sys, threading, time
from app.engine import copies
from app.locations.folder.location import FolderLocation

note, sys.argv = sys.argv[1], ["filesync", *sys.argv[2:]]
stamps = ctypes.c_long.in_dll(ctypes.CDLL(None), "filesync_test_stamps")
seen = {"written_before": 0}

def stopped(check_stop):
    try:
        check_stop()
    except Exception:
        return True
    return False

def stop_soon(check_stop, began):
    while stamps.value < began + 50:
        time.sleep(0.001)
    seen["signalled"] = time.time()
    os.kill(os.getpid(), signal.SIGTERM)
    while not stopped(check_stop):
        time.sleep(0.001)
    seen["copied_at_stop"] = stamps.value - began

def noted(real):
    def write(self, jobs, *, parallel_reads=False):
        if len(jobs) <= copies.GROUP_FILES or "size" in seen:
            outcomes = real(self, jobs, parallel_reads=parallel_reads)
            seen["written_before"] += sum(not isinstance(o, Exception) for o in outcomes)
            return outcomes
        seen["size"], began = len(jobs), stamps.value
        check_stop = jobs[0].source_root.check_stop
        threading.Thread(target=stop_soon, args=(check_stop, began), daemon=True).start()
        try:
            outcomes = real(self, jobs, parallel_reads=parallel_reads)
        except BaseException as exc:
            seen["ended"] = type(exc).__name__
            raise
        else:
            seen["ended"] = "wrote its files"
            return outcomes
        finally:
            seen["copied_at_end"] = stamps.value - began
            with open(note, "w") as f:
                json.dump(seen, f)
    return write

FolderLocation.write_many = noted(FolderLocation.write_many)
FolderLocation.write_many_unsettled = noted(FolderLocation.write_many_unsettled)
runpy.run_module("app", run_name="__main__")
"""


@pytest.mark.skipif(not fastcopy.SPEEDUP, reason="the C speedup is not built here")
def test_a_stop_during_a_group_of_small_files_ends_it_within_a_call(tmp_path: Path) -> None:
    shim = preload_library(tmp_path, "slow_stamps", SLOW_STAMPS)
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    rng = random.Random(3)
    files: dict[str, bytes] = {}
    for i in range(2000):
        files[f"d{i % 15:02d}/f{i:04d}"] = data = rng.randbytes(rng.randint(1, 4) * 1024)
        write_file(a / f"d{i % 15:02d}" / f"f{i:04d}", data)
    b.mkdir()
    note, log = tmp_path / "note.json", tmp_path / "run.log"
    args = ["run", f"folder:{a}", f"folder:{b}", "--state", str(state)]
    with open(log, "wb") as out:
        child = subprocess.run(
            [sys.executable, "-c", _STOPPED_IN_A_GROUP, str(note), *args],
            env={**os.environ, "LD_PRELOAD": str(shim)},
            stdout=out,
            stderr=out,
            timeout=300,
            check=False,
        )
    ended = time.time()
    text = log.read_text()
    assert child.returncode == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    seen = json.loads(note.read_text())
    assert seen["ended"] == "SyncStopped", seen
    # What was under way when the stop was set may finish: at most one call's files.
    after = seen["copied_at_end"] - seen["copied_at_stop"]
    assert after <= fastcopy.FAST_CALL_FILES, f"{after} files copied after the stop: {seen}"
    assert ended - seen["signalled"] < STOP_WITHIN, f"{ended - seen['signalled']:.1f} s"
    on_disk = tree(b)
    assert len(on_disk) == seen["written_before"], "files of the stopped group were renamed"
    for rel, data in on_disk.items():
        assert data == files[rel], f"{rel} is partial"
    assert not list(b.rglob(f"{TEMP_PREFIX}*")), "temp files left"
    assert indexed(state, b) == set(on_disk)
