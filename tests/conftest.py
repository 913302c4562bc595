"""Fixtures every test gets: leak checks for threads and child processes, real locations."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import logsetup
from app.locations import LocationOptions, open_location
from app.locations.base import Location
from tests.helpers import SESSION_PIDS, poll_until

pytest_plugins = [
    "tests.ftp_server",
    "tests.sshd_server",
    "tests.engine_fixtures",
    "tests.web_fixtures",
    "tests.s3_server",
    "tests.s3_fixtures",
]


def _children() -> set[int]:
    pids: set[int] = set()
    task_dir = Path(f"/proc/{os.getpid()}/task")
    for task in task_dir.iterdir() if task_dir.exists() else ():
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        pids.update(int(p) for p in text.split())
    return pids - SESSION_PIDS


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(autouse=True)
def no_leaked_threads_or_processes() -> Iterator[None]:
    """Fail a test that leaves a thread or a child process running (a sync engine is threads)."""
    threads_before = set(threading.enumerate())
    children_before = _children()
    yield

    def leaks() -> tuple[list[threading.Thread], list[int]]:
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        return threads, [p for p in _children() - children_before if _alive(p)]

    if poll_until(lambda: leaks() == ([], []), 10):
        return
    leaked, procs = leaks()
    names = ", ".join(sorted(t.name for t in leaked))
    pytest.fail(f"test leaked threads [{names}] and child processes {procs}")


@pytest.fixture(autouse=True)
def secrets_registered_by_a_test_stay_in_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give every test its own copy of the log-masking secrets.

    Every password a test parses is registered for masking for the rest of the process; the
    hypothesis tests register dozens of random ones ("else", "0000"), which then masked words
    in other tests' log lines depending on test order.
    """
    monkeypatch.setattr(logsetup, "_SECRETS", set(logsetup._SECRETS))


@pytest.fixture
def folder_location(tmp_path: Path) -> Iterator[Location]:
    """An opened folder location on a fresh temporary folder."""
    root = tmp_path / "folder"
    root.mkdir()
    loc = open_location(f"folder:{root}", LocationOptions())
    loc.open()
    loc.adopt(has_history=False)
    yield loc
    loc.close()


@pytest.fixture
def zip_location(tmp_path: Path) -> Iterator[Location]:
    """An opened ZIP location on an archive that does not exist yet (it is created)."""
    loc = open_location(f"zip:{tmp_path / 'archive.zip'}", LocationOptions())
    loc.open()
    yield loc
    loc.close()
