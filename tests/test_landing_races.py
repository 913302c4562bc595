"""A user's save or delete made the instant FileSync renamed its copy into place is the user's.

FileSync learns the meta it records for a copy by looking at the name right after its rename.
A save (replace or rewrite) or a delete that falls between the rename and that look must not
be taken for FileSync's copy: the index would call the location in sync, the save would never
reach the others, and a later edit elsewhere would overwrite it without a conflict copy.

The C speedup renames and looks with no Python in between, so the user's action is injected
at that exact moment by a small preloaded library (``LD_PRELOAD``) around the real rename calls
(``renameat`` for the Python steps, ``renameat2`` through ``syscall`` for the C ones), in a real
subprocess writing a real group into a real folder. Names tell the library what the user does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from app.locations import LocationOptions, open_location
from app.locations.base import FileMeta, LocalRoot, Location, WriteJob
from app.locations.folder import fastcopy
from tests.helpers import write_file
from tests.preload import USER_ACTS_ON_NAME, preload_library

#: Right after a successful rename onto ``saved-*`` the user renames ``user-saved-*`` over it,
#: after one onto ``deleted-*`` deletes it, after one onto ``rewritten-*`` appends to it.
USER_AT_THE_RENAME = (
    r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

"""
    + USER_ACTS_ON_NAME
    + r"""
int renameat(int src_dir, const char *src, int dst_dir, const char *dst) {
    static int (*real)(int, const char *, int, const char *);
    if (real == NULL) real = dlsym(RTLD_NEXT, "renameat");
    int result = real(src_dir, src, dst_dir, dst);
    if (result == 0) user(dst_dir, dst);
    return result;
}

long syscall(long number, ...) {
    static long (*real)(long, ...);
    if (real == NULL) real = dlsym(RTLD_NEXT, "syscall");
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
    va_end(ap);
    long result = real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (number == SYS_renameat2 && result == 0) user((int)a[2], (const char *)a[3]);
    return result;
}
"""
)

NAMES = ["plain-1", "saved-1", "deleted-1", "rewritten-1"]
MTIME_NS = 1_600_000_000 * 1_000_000_000


def _folder(root: Path) -> Location:
    loc = open_location(f"folder:{root}", LocationOptions())
    loc.open()
    loc.adopt(has_history=False)
    return loc


def _go_on() -> None:
    """A stop check that finds no stop."""


def land_and_report(a: str, b: str) -> None:
    """In the subprocess: copy NAMES from ``a`` to ``b`` in one group; print what came of it."""
    source, target = _folder(Path(a)), _folder(Path(b))
    jobs = [
        WriteJob(
            name,
            partial(source.open_read, name),
            MTIME_NS,
            None,
            partial(source.local_file, name),
            len(name),
            LocalRoot(source.local_root, _go_on),
        )
        for name in NAMES
    ]
    with source.batch(), target.batch():
        outcomes = target.write_many(jobs)
    listing = target.scan()
    report = {}
    for name, outcome in zip(NAMES, outcomes, strict=True):
        if isinstance(outcome, FileMeta):
            report[name] = {
                "size": outcome.size,
                "mtime_ns": outcome.mtime_ns,
                "as_scanned_now": listing.get(name) == outcome,
            }
        else:
            report[name] = {"error": repr(outcome)}
    print(json.dumps(report))


@pytest.mark.parametrize("speedup", ["c", "python"])
def test_a_save_or_delete_right_after_the_rename_is_not_taken_for_the_copy(
    tmp_path: Path, speedup: str
) -> None:
    if speedup == "c" and not fastcopy.SPEEDUP:
        pytest.skip("the C speedup is not built here")
    shim = preload_library(tmp_path, "user_at_the_rename", USER_AT_THE_RENAME)
    a, b = tmp_path / "a", tmp_path / "b"
    for name in NAMES:
        write_file(a / name, name)
    write_file(b / "user-saved-1", "the user's save")
    env = {**os.environ, "LD_PRELOAD": str(shim)}
    env["FILESYNC_PURE_PYTHON"] = "1" if speedup == "python" else "0"
    out, err = tmp_path / "out.json", tmp_path / "err.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from tests.test_landing_races import land_and_report as r;"
                " r(sys.argv[1], sys.argv[2])",
                str(a),
                str(b),
            ],
            env=env,
            cwd=Path(__file__).parents[1],
            stdout=stdout,
            stderr=stderr,
            timeout=120,
            check=False,
        )
    assert err.read_text() == "", err.read_text()
    report = json.loads(out.read_text())
    assert (b / "saved-1").read_text() == "the user's save"
    assert not (b / "deleted-1").exists()
    assert (b / "rewritten-1").read_text() == "rewritten-1!"
    ours = {name: {"size": len(name), "mtime_ns": MTIME_NS} for name in NAMES}
    # Each outcome is the copy FileSync wrote: for the plain one, what a scan reports; for the
    # others, not what the user left there, so the next scan sees the user's save or delete.
    assert report == {
        "plain-1": {**ours["plain-1"], "as_scanned_now": True},
        "saved-1": {**ours["saved-1"], "as_scanned_now": False},
        "deleted-1": {**ours["deleted-1"], "as_scanned_now": False},
        "rewritten-1": {**ours["rewritten-1"], "as_scanned_now": False},
    }
