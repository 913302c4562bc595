"""A save or delete made the instant a conflict copy got its name is the user's, not the copy.

A folder keeps a conflict's loser as a file of its own: a temp file, given its name with a
link, then looked at to learn what to record. A user who saves over (replaces or rewrites) or
deletes that new name between the link and the look made a change of their own: the save
must not be recorded as FileSync's copy, and the delete must not turn the copy, which was
made, into a failed keep-aside (the winner then waited, and the copy the user deleted came
back at the next try). As for a landing (``tests/test_landing_races.py``), the user's action
is injected at that exact moment by a small preloaded library around the real ``linkat``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import write_file
from tests.preload import USER_ACTS_ON_NAME, preload_library
from tests.test_landing_races import _folder

#: Right after a successful link onto ``saved-*`` the user renames ``user-saved-*`` over it,
#: after one onto ``deleted-*`` deletes it, after one onto ``rewritten-*`` appends to it.
USER_AT_THE_LINK = (
    r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
"""
    + USER_ACTS_ON_NAME
    + r"""
int linkat(int src_dir, const char *src, int dst_dir, const char *dst, int flags) {
    static int (*real)(int, const char *, int, const char *, int);
    if (real == NULL) real = dlsym(RTLD_NEXT, "linkat");
    int result = real(src_dir, src, dst_dir, dst, flags);
    if (result == 0) user(dst_dir, dst);
    return result;
}
"""
)

KEPT = ["plain-1", "saved-1", "deleted-1", "rewritten-1"]
LOSER = b"the losing version"
MTIME_NS = 1_600_000_000 * 1_000_000_000


def keep_and_report(root: str) -> None:
    """In the subprocess: keep ``loser`` aside under each name of KEPT; print what came of it."""
    folder = _folder(Path(root))
    expected = folder.stat("loser")
    assert expected is not None
    report = {}
    for name in KEPT:
        try:
            meta = folder.copy_aside("loser", name, expected)
        except Exception as exc:  # reported to the test, which says what it wanted
            report[name] = {"error": repr(exc)}
            continue
        report[name] = {
            "size": meta.size,
            "mtime_ns": meta.mtime_ns,
            "as_scanned_now": folder.stat(name) == meta,
        }
    print(json.dumps(report))


def test_a_save_or_delete_right_after_the_link_is_not_taken_for_the_conflict_copy(
    tmp_path: Path,
) -> None:
    shim = preload_library(tmp_path, "user_at_the_link", USER_AT_THE_LINK)
    root = tmp_path / "folder"
    write_file(root / "loser", LOSER, mtime=MTIME_NS / 1e9)
    write_file(root / "user-saved-1", "the user's save")
    out, err = tmp_path / "out.json", tmp_path / "err.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from tests.test_keepcopy_races import keep_and_report as r;"
                " r(sys.argv[1])",
                str(root),
            ],
            env={**os.environ, "LD_PRELOAD": str(shim)},
            cwd=Path(__file__).parents[1],
            stdout=stdout,
            stderr=stderr,
            timeout=120,
            check=False,
        )
    assert err.read_text() == "", err.read_text()
    report = json.loads(out.read_text())
    assert (root / "loser").read_bytes() == LOSER
    assert (root / "plain-1").read_bytes() == LOSER
    assert (root / "saved-1").read_text() == "the user's save"
    assert not (root / "deleted-1").exists()
    assert (root / "rewritten-1").read_bytes() == LOSER + b"!"
    ours = {"size": len(LOSER), "mtime_ns": MTIME_NS}
    # Each copy was made and is reported as FileSync made it: for the plain one, what a look
    # at the name reports; for the others, not what the user left there, so the next scan
    # sees the user's save or delete as a change.
    assert report == {
        "plain-1": {**ours, "as_scanned_now": True},
        "saved-1": {**ours, "as_scanned_now": False},
        "deleted-1": {**ours, "as_scanned_now": False},
        "rewritten-1": {**ours, "as_scanned_now": False},
    }
