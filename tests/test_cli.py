"""The headless command line, run as a real subprocess like a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import PROMPT, read_location_file
from tests.helpers import indexed, tree, wait_until, write_file


def filesync(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    return a, b, tmp_path / "state"


def test_once_syncs_and_exits_zero(two: tuple[Path, Path, Path]) -> None:
    a, b, state = two
    write_file(a / "x/y.txt", "hello")
    result = filesync("run", f"folder:{a}", f"folder:{b}", "--once", "--state", str(state))
    assert result.returncode == 0, result.stderr
    assert tree(b) == {"x/y.txt": b"hello"}
    assert "converged" in result.stderr


def test_version() -> None:
    result = filesync("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("filesync ")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("bogus", "'bogus' is not a location"),
        ("/some/path", "did you mean folder:/some/path?"),
        ("ftp:", "no host"),
        ("zip:", "path is empty"),
        ("ftp://u:secret@host:99999/x", "out of range"),
    ],
)
def test_bad_spec_is_one_clear_line_exit_2(
    two: tuple[Path, Path, Path], spec: str, expected: str
) -> None:
    a, _, state = two
    result = filesync("run", f"folder:{a}", spec, "--once", "--state", str(state))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "secret" not in result.stderr


def test_missing_folder_is_a_clear_error(two: tuple[Path, Path, Path]) -> None:
    a, _, state = two
    missing = f"folder:{a.parent}/nope"  # beside a: a folder inside a would be refused
    result = filesync("run", f"folder:{a}", missing, "--once", "--state", str(state))
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_one_location_is_a_usage_error(two: tuple[Path, Path, Path]) -> None:
    a, _, state = two
    result = filesync("run", f"folder:{a}", "--once", "--state", str(state))
    assert result.returncode == 2
    assert "at least two locations" in result.stderr


def test_location_file_with_comments(two: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, b, state = two
    listing = tmp_path / "locations.txt"
    listing.write_text(f"# my folders\n\nfolder:{a}\n  folder:{b}  \n")
    assert read_location_file(listing) == [f"folder:{a}", f"folder:{b}"]
    write_file(a / "f.txt", "f")
    result = filesync("run", "--file", str(listing), "--once", "--state", str(state))
    assert result.returncode == 0, result.stderr
    assert tree(b) == {"f.txt": b"f"}


def test_interactive_prompt_until_end(two: tuple[Path, Path, Path]) -> None:
    """On a terminal with no locations the original prompt asks for them (driven via a pty)."""
    import pty

    a, b, state = two
    write_file(a / "p.txt", "prompted")
    pid, fd = pty.fork()
    if pid == 0:  # child: the real CLI on a terminal
        os.execv(
            sys.executable, [sys.executable, "-m", "app", "run", "--once", "--state", str(state)]
        )
    output = b""

    def read_until(text: bytes) -> bool:
        nonlocal output
        try:
            output += os.read(fd, 4096)
        except OSError:
            return False
        return output.count(text) >= expected_count

    try:
        for expected_count, answer in enumerate(
            ["bad", f"folder:{a}", f"folder:{b}", "end"], start=1
        ):
            wait_until(lambda: read_until(PROMPT.encode()), 30, f"prompt #{expected_count}")
            os.write(fd, answer.encode() + b"\n")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"is not a location" in output
    assert tree(b) == {"p.txt": b"prompted"}


def start_watching(a: Path, b: Path, state: Path) -> subprocess.Popen[str]:
    """``filesync run a b`` in the background, as a service manager would start it."""
    return subprocess.Popen(
        [sys.executable, "-m", "app", "run", f"folder:{a}", f"folder:{b}", "--state", str(state)],
        stderr=subprocess.PIPE,
        text=True,
    )


def test_run_watches_until_sigterm_then_exits_cleanly(two: tuple[Path, Path, Path]) -> None:
    a, b, state = two
    proc = start_watching(a, b, state)
    try:
        wait_until((state / "index.sqlite").exists, message="engine start")
        write_file(a / "live.txt", "live")
        wait_until(lambda: tree(b).get("live.txt") == b"live", message="live copy")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_second_instance_on_same_state_is_refused(two: tuple[Path, Path, Path]) -> None:
    a, b, state = two
    proc = start_watching(a, b, state)
    try:
        wait_until((state / "filesync.lock").exists, message="first instance lock")
        wait_until((state / "index.sqlite").exists, message="first instance index")
        result = filesync("run", f"folder:{a}", f"folder:{b}", "--once", "--state", str(state))
        assert result.returncode == 1
        assert "already running" in result.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_second_instance_is_refused_after_the_state_folder_was_deleted(
    two: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Deleting the state folder under a running FileSync must not free its single-instance lock."""
    import shutil

    a, b, state = two
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "run",
                f"folder:{a}",
                f"folder:{b}",
                "--state",
                str(state),
            ],
            stdout=log,
            stderr=log,
        )
    try:
        wait_until(
            lambda: "watching" in (tmp_path / "first.log").read_text(), message="first instance"
        )
        shutil.rmtree(state)
        result = filesync("run", f"folder:{a}", f"folder:{b}", "--once", "--state", str(state))
        assert result.returncode == 1, result.stderr
        assert "already running" in result.stderr
        assert f"pid {proc.pid}" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, (tmp_path / "first.log").read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets: Linux")
def test_state_held_by_an_older_version_is_refused(two: tuple[Path, Path, Path]) -> None:
    """The state's socket name is the sha256 of its real path, as ``hashlib`` made it before
    the lock took CPython's built-in sha256: a FileSync of either kind sees the other."""
    import hashlib
    import socket

    a, b, state = two
    state.mkdir()
    digest = hashlib.sha256(os.fsencode(os.path.realpath(state))).hexdigest()[:40]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as holder:
        holder.bind(b"\0filesync-state-" + digest.encode())
        holder.listen(1)
        result = filesync("run", f"folder:{a}", f"folder:{b}", "--once", "--state", str(state))
    assert result.returncode == 1, result.stderr
    assert f"already running (pid {os.getpid()})" in result.stderr


def test_once_ends_with_its_log_file_index_and_lock_complete(two: tuple[Path, Path, Path]) -> None:
    """``run`` ends the process without tearing the interpreter down: nothing may be lost."""
    a, b, state = two
    write_file(a / "x/y.txt", "hello")
    log = state.parent / "log.txt"
    argv = ["run", f"folder:{a}", f"folder:{b}", "--once", "--state", str(state)]
    result = filesync(*argv, "--log-file", str(log))
    assert result.returncode == 0, result.stderr
    assert result.stderr.rstrip().endswith("converged")
    assert log.read_text().rstrip().endswith("converged")
    assert indexed(state, a) == indexed(state, b) == {"x/y.txt"}
    again = filesync(*argv)  # the instance lock was released, and the index says in step
    assert again.returncode == 0, again.stderr
    assert again.stderr.rstrip().endswith("converged")


def test_a_run_collects_cycles_less_often_than_python_does(two: tuple[Path, Path, Path]) -> None:
    """Full collector passes over every listed file cost 0.2-0.5 s a 100,000-file restart."""
    a, b, state = two
    argv = ["run", f"folder:{a}", f"folder:{b}", "--once", "--state", str(state)]
    code = f"import gc\nfrom app.cli import main\nmain({argv!r})\nprint(gc.get_threshold()[0])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 100_000


def test_python_m_app_collects_no_cycles_while_its_modules_load() -> None:
    """With Python's default thresholds, loading FileSync's modules ran ~24 collections."""
    code = (
        "import gc, runpy, sys\n"
        "runs = []\n"
        "gc.callbacks.append(lambda phase, info: runs.append(phase) if phase == 'start' else 0)\n"
        "sys.argv = ['app', '--version']\n"
        "try:\n"
        "    runpy.run_module('app', run_name='__main__', alter_sys=True)\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'app.engine.engine' in sys.modules\n"
        "print(len(runs))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.splitlines()[-1]) <= 2, result.stdout
