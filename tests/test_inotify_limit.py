"""A folder the OS gives no inotify instance for is polled, with a warning, and still syncs.

The app runs as a real subprocess in a user namespace of its own (``unshare``) whose
``max_inotify_instances`` is 0. The limit used to be lowered machine-wide for the test's
user instead, and the instances left were used up by the test: another process closing one
of its own instances in between freed a slot the engine then got (the test failed), and
every other process of that user was refused watches while it ran.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import tree, wait_until, write_file

WARNING = "the OS refused more file watches"
#: In the new namespace: no inotify instance at all, then the app (its argv follows).
NO_INSTANCES = 'echo 0 > /proc/sys/user/max_inotify_instances && exec "$@"'


def unshare_works() -> bool:
    """Whether this machine lets us make a user namespace and set its limits."""
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--user", "--map-root-user", "sh", "-c", NO_INSTANCES, "sh", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def test_inotify_exhaustion_falls_back_to_polling(tmp_path: Path) -> None:
    if not unshare_works():
        pytest.skip("needs unprivileged user namespaces (unshare --user) to deny inotify")
    a, b, state, log = tmp_path / "a", tmp_path / "b", tmp_path / "state", tmp_path / "run.log"
    write_file(a / "first.txt", "initial sync")
    b.mkdir()
    app = [sys.executable, "-m", "app", "run", f"folder:{a}", f"folder:{b}", "--state", str(state)]
    command = ["unshare", "--user", "--map-root-user", "sh", "-c", NO_INSTANCES, "sh", *app]
    with open(log, "w") as out:
        proc = subprocess.Popen([*command, "--poll-interval", "0.5"], stdout=out, stderr=out)

    def output() -> str:
        return log.read_text()[-3000:]

    try:
        wait_until((b / "first.txt").exists, 60, output)
        wait_until(lambda: log.read_text().count(WARNING) == 2, 60, output)  # both folders
        write_file(a / "polled.txt", "polled")
        write_file(b / "sub/back.txt", "the other way")
        wait_until(lambda: tree(a) == tree(b) and len(tree(a)) == 3, 60, output)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, output()
    assert "Traceback" not in log.read_text(), output()
