"""Small C libraries preloaded (``LD_PRELOAD``) into a test's subprocess, to act at an exact
moment around a real system call: what no sleep or thread could time.

:data:`USER_ACTS_ON_NAME` is the user of the race tests: ``user(dir, name)``, called right
after FileSync gave ``name`` its file, renames ``user-saved-*`` over ``saved-*``, deletes
``deleted-*`` and appends to ``rewritten-*``; other names are left alone.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

USER_ACTS_ON_NAME = r"""
static void user(int dir, const char *name) {
    static int (*real_renameat)(int, const char *, int, const char *);
    if (real_renameat == NULL) real_renameat = dlsym(RTLD_NEXT, "renameat");
    if (strncmp(name, "saved-", 6) == 0) {
        char theirs[4096];
        snprintf(theirs, sizeof theirs, "user-%s", name);
        real_renameat(dir, theirs, dir, name);
    } else if (strncmp(name, "deleted-", 8) == 0) {
        unlinkat(dir, name, 0);
    } else if (strncmp(name, "rewritten-", 10) == 0) {
        int fd = openat(dir, name, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd >= 0) { (void)!write(fd, "!", 1); close(fd); }
    }
}
"""


def preload_library(tmp_path: Path, name: str, source: str) -> Path:
    """``source`` built as ``tmp_path/name.so``; the test is skipped where no C compiler is."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the preloaded library")
    code, shim = tmp_path / f"{name}.c", tmp_path / f"{name}.so"
    code.write_text(source)
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-o", shim, code, "-ldl"], check=True, timeout=60
    )
    return shim
