"""Helpers shared by the tests: waiting with a deadline, building trees, reading trees."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

#: Generous default: the suite must stay reliable on a loaded 2-core machine.
DEFAULT_TIMEOUT = 30.0


#: Child processes that live for the whole session (the S3 servers): not a test's leak.
SESSION_PIDS: set[int] = set()


def poll_until(condition: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Call ``condition`` until it is truthy (True) or ``timeout`` seconds pass (False).

    For a caller with its own answer to a timeout (a skip, an error quoting a server's log);
    a test's own waits use :func:`wait_until`, which fails with a message.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_until(
    condition: Callable[[], object],
    timeout: float = DEFAULT_TIMEOUT,
    message: str | Callable[[], str] = "condition",
    interval: float = 0.02,
) -> None:
    """Poll ``condition`` until it is truthy; fail with ``message`` after ``timeout`` seconds."""
    last_exc: list[BaseException] = []

    def holds() -> object:
        last_exc.clear()
        try:
            return condition()
        except Exception as exc:  # the condition may race with the engine; retry until deadline
            last_exc.append(exc)
            return False

    if not poll_until(holds, timeout, interval):
        text = message() if callable(message) else message
        extra = f" (last error: {last_exc[0]!r})" if last_exc else ""
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {text}{extra}")


def write_file(path: Path, data: bytes | str, mtime: float | None = None) -> Path:
    """Create ``path`` (and its parents) with ``data``; optionally set its mtime (seconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def tree(root: Path) -> dict[str, bytes]:
    """Return every user file below ``root`` (FileSync's own files excluded) with its bytes."""
    out: dict[str, bytes] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".filesync"]
        for name in filenames:
            if name.startswith(".filesync"):
                continue
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            try:
                out[rel] = full.read_bytes()
            except FileNotFoundError:
                continue
    return out


def trees_equal(*roots: Path) -> bool:
    """True when every root holds exactly the same user files with the same bytes."""
    first = tree(roots[0])
    return all(tree(r) == first for r in roots[1:])


def describe_trees(*roots: Path) -> str:
    """A short diff of several trees for assertion messages."""
    trees = [tree(r) for r in roots]
    names = sorted(set().union(*trees))
    lines = []
    for name in names:
        row = [("-" if name not in t else f"{len(t[name])}B") for t in trees]
        if len(set(row)) > 1 or len({t.get(name) for t in trees}) > 1:
            lines.append(f"  {name}: {' | '.join(row)}")
    return "trees differ:\n" + "\n".join(lines[:40])


def indexed(state: Path, location: Path) -> set[str]:
    """The paths the state index in folder ``state`` has saved for folder ``location``.

    Reads committed rows only, through a separate read-only connection, as a restart would.
    """
    db = sqlite3.connect(f"file:{state / 'index.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT path FROM files WHERE location = ?", (f"folder:{location}",))
        return {row[0] for row in rows}
    finally:
        db.close()
