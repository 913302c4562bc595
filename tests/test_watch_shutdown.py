"""Stopping the engine while files change logs no error (issue 9: the inotify emitter's race)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from tests.engine_fixtures import Rig


def test_stopping_the_engine_while_files_change_logs_no_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """watchdog logs an error when an event arrives as its emitter stops; a stop is no error.

    The race needs events in flight at the moment of the stop, so a thread keeps writing
    while the engine stops, over many cycles (one in ten hit it before the fix).
    """
    caplog.set_level(logging.WARNING)
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        root.mkdir()
    for _ in range(30):
        rig = Rig(tmp_path, roots)
        rig.start()
        done = threading.Event()

        def churn(done: threading.Event = done) -> None:
            n = 0
            while not done.is_set():
                (roots[0] / f"churn{n % 4}.txt").write_bytes(b"x" * n)
                n += 1

        writer = threading.Thread(target=churn)
        writer.start()
        try:
            done.wait(0.03)
            rig.stop()
        finally:
            done.set()
            writer.join()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, f"stop logged: {[r.getMessage() for r in errors]}"
