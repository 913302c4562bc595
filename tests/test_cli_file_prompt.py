"""``filesync run --file`` without a path: asked for on a terminal, a usage error elsewhere.

The prompt is driven through a real pseudo-terminal, as a person would answer it.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli import FILE_PROMPT
from tests.helpers import tree, write_file

DEADLINE = 60.0


class Terminal:
    """A child process on a pseudo-terminal; everything it prints is kept in ``output``."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "TERM": "dumb", "INPUTRC": os.devnull}
        pid, fd = pty.fork()
        if pid == 0:  # the child: the real command line on a terminal
            os.execve(sys.executable, [sys.executable, "-m", "app", *args], env)
        self.pid, self.fd = pid, fd
        self.output = ""
        self.status: int | None = None

    def wait_for(self, text: str, count: int = 1) -> None:
        """Read until ``text`` was printed ``count`` times, or fail after the deadline."""
        deadline = time.monotonic() + DEADLINE
        while self.output.count(text) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} (#{count}) within {DEADLINE:.0f}s: {self.output!r}"
            if not self._read(left):
                raise AssertionError(f"exited before {text!r} (#{count}): {self.output!r}")

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def exit_code(self) -> int:
        """Read to the end of the output and return the exit status (deadline applies)."""
        deadline = time.monotonic() + DEADLINE
        while self._read(deadline - time.monotonic()):
            assert time.monotonic() < deadline, f"still running: {self.output!r}"
        _, status = os.waitpid(self.pid, 0)
        self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return True
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.output += data.decode(errors="replace")
        return bool(data)

    def close(self) -> None:
        if self.status is None:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_file(a / "asked.txt", "from the asked file")
    listing = tmp_path / "my-locations.txt"
    listing.write_text(f"folder:{a}\nfolder:{b}\n")
    return a, b, listing


def test_file_without_path_asks_and_asks_again_until_the_file_is_readable(
    folders: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    a, b, listing = folders
    term = Terminal("run", "--file", "--once", "--state", str(tmp_path / "state"))
    try:
        term.wait_for(FILE_PROMPT)
        term.type(f"{tmp_path / 'missing.txt'}\n")
        term.wait_for(FILE_PROMPT, 2)
        term.type(f"{a}\n")
        term.wait_for(FILE_PROMPT, 3)
        term.type(f"{listing}\n")
        assert term.exit_code() == 0, term.output
    finally:
        term.close()
    assert f"cannot read location file {tmp_path / 'missing.txt'}: No such file" in term.output
    assert f"cannot read location file {a}: Is a directory" in term.output
    assert tree(b) == {"asked.txt": b"from the asked file"}


def test_the_path_prompt_completes_paths_with_tab(
    folders: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, b, _ = folders
    term = Terminal("run", "--once", "--state", str(tmp_path / "state"), "--file")
    try:
        term.wait_for(FILE_PROMPT)
        term.type(f"{tmp_path / 'my-loc'}\t\n")
        assert term.exit_code() == 0, term.output
    finally:
        term.close()
    assert tree(b) == {"asked.txt": b"from the asked file"}


def test_file_without_path_off_a_terminal_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "run", "--file", "--state", str(tmp_path / "state")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--file needs a path" in lines[0]


def test_file_with_a_path_reads_it_as_before(
    folders: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, b, listing = folders
    state = str(tmp_path / "state")
    result = subprocess.run(
        [sys.executable, "-m", "app", "run", "--file", str(listing), "--once", "--state", state],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert tree(b) == {"asked.txt": b"from the asked file"}
