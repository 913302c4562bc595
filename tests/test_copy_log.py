"""One log line per copied file, however the engine writes them (issue 11).

The engine holds a group's lines and writes them together (``held_lines``): the log must still
get every line, whole, once, in order, in the format users read, with secrets masked, and
another thread's lines must not wait for the holding thread.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import write_file

CONSOLE = re.compile(r"^\d\d:\d\d:\d\d INFO    copied (\S+) in folder:(\S+) from folder:(\S+)$")
LOG_FILE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO    app\.engine\.activity: "
    r"copied (\S+) in folder:(\S+) from folder:(\S+)$"
)


def _copies(text: str, line: re.Pattern[str]) -> list[tuple[str, str]]:
    found = [line.match(row) for row in text.splitlines()]
    return [(m.group(2), m.group(1)) for m in found if m is not None]


def test_every_copied_file_has_one_whole_line_in_order_on_the_console_and_in_the_log_file(
    tmp_path: Path,
) -> None:
    a, b, c, state = (tmp_path / n for n in ("a", "b", "c", "state"))
    paths = sorted(f"d{i % 5}/f{i:04d}.txt" for i in range(700))
    for path in paths:
        write_file(a / path, path)
    b.mkdir()
    c.mkdir()
    log = tmp_path / "filesync.log"
    argv = [f"folder:{a}", f"folder:{b}", f"folder:{c}", "--once", "--state", str(state)]
    result = subprocess.run(
        [sys.executable, "-m", "app", "run", *argv, "--log-file", str(log)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for text, line in ((result.stderr, CONSOLE), (log.read_text(), LOG_FILE)):
        copies = _copies(text, line)
        for target in (b, c):
            assert [p for t, p in copies if t == str(target)] == paths
        assert len(copies) == 2 * len(paths)
    assert "converged" in result.stderr.splitlines()[-1]


_HOLDING = """
import logging, sys, threading
from app.logsetup import held_lines, register_secret, setup_logging

setup_logging(0, log_file=__import__("pathlib").Path(sys.argv[1]))
register_secret("hunter22-very-secret")
log = logging.getLogger("app.engine.activity")
path = sys.argv[1]
with held_lines():
    for i in range(300):
        log.info("copied f%03d with hunter22-very-secret", i)
    other = threading.Thread(target=lambda: log.info("from another thread"))
    other.start()
    other.join()
    with open(path) as f:
        seen = f.read()
    assert "from another thread" in seen, "another thread's line waited for the held ones"
    assert "f000" not in seen, "held lines were written before the block ended"
log.info("after")
"""


def test_held_lines_come_out_whole_in_order_masked_and_hold_back_no_other_thread(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log.txt"
    result = subprocess.run(
        [sys.executable, "-c", _HOLDING, str(log)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for text in (result.stderr, log.read_text()):
        rows = text.splitlines()
        held = [r for r in rows if " copied f" in r]
        assert [r.split("copied ")[1] for r in held] == [f"f{i:03d} with ***" for i in range(300)]
        assert rows.index(next(r for r in rows if "another thread" in r)) < rows.index(held[0])
        assert rows[-1].endswith("after")
        assert "hunter22" not in text
