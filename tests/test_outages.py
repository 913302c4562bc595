"""One owner of "a location is unavailable": the engine's slot (issue 10).

However an outage is noticed (the engine's own call, a failed reopen, the poller), it goes
through :meth:`Slot.fail`: one log line and one activity record when it starts, one when it
ends, and attempts to reopen that back off from 1 s to a minute and start over once the
location is back. Real engine, real folder, real pyftpdlib server on 127.0.0.1.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.slot import REOPEN_FIRST, REOPEN_MAX, Slot
from app.engine.status import LocationState
from app.errors import FileSyncError, LocationUnavailable
from app.locations import LocationOptions, open_location
from tests.ftp_server import ThreadedFtpServer
from tests.helpers import wait_until, write_file
from tests.test_ftp_sync import T_OLD, SyncRig


@pytest.fixture
def sync(tmp_path: Path, ftp_server: ThreadedFtpServer) -> Iterator[SyncRig]:
    rig = SyncRig(tmp_path, ftp_server)
    yield rig
    rig.close()


def _slot(rig: SyncRig) -> Slot:
    return rig.engine._slots[rig.ftp.key]


def _state(rig: SyncRig) -> LocationState:
    return {s.key: s for s in rig.engine.status().locations}[rig.ftp.key].state


def _outage_lines(caplog: pytest.LogCaptureFixture, rig: SyncRig) -> list[logging.LogRecord]:
    """Warnings and errors about the server being unreachable (a stall under load is not)."""
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING
        and rig.ftp.name in r.getMessage()
        and "not answering" not in r.getMessage()
    ]


def _pollers(rig: SyncRig) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"poll {rig.ftp.name}" and t.is_alive()]


def test_an_outage_is_logged_once_however_often_the_reopen_fails(
    sync: SyncRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    write_file(sync.server.root / "before.txt", "on the server", mtime=T_OLD)
    sync.engine.start()
    sync.wait_converged()
    slot = _slot(sync)
    caplog.clear()

    sync.server.stop()
    # 1 s, then 2 s, then 4 s: two reopens have failed since the outage was noticed.
    wait_until(lambda: slot.retry_delay >= 4 * REOPEN_FIRST, 60, "two failed reopens")
    assert _state(sync) is LocationState.UNAVAILABLE
    lines = _outage_lines(caplog, sync)
    assert [r.name for r in lines] == ["app.engine.slot"], [r.getMessage() for r in lines]
    assert [a.action for a in sync.activity if a.action == "error"] == ["error"]

    sync.server.start()
    wait_until(lambda: _state(sync) is LocationState.OK, 60, "the server is used again")
    write_file(sync.folder / "after.txt", "written once it is back")
    sync.wait_converged()
    back = [r for r in caplog.records if "available again" in r.getMessage()]
    assert len(back) == 1, [r.getMessage() for r in back]
    assert [a.action for a in sync.activity if a.action == "available"] == ["available"]
    assert slot.retry_delay == REOPEN_FIRST
    assert len(_outage_lines(caplog, sync)) == 1


def test_a_failed_poll_goes_through_the_engines_outage_path(
    sync: SyncRig, caplog: pytest.LogCaptureFixture
) -> None:
    """With nothing to sync only the poller talks to the server: its failure is reported
    once, its polling ends (no knocking every 0.2 s beside the engine's paced reopens), and
    the reopened location is watched by a new poller."""
    caplog.set_level(logging.INFO)
    sync.engine.start()
    sync.wait_converged()
    assert len(_pollers(sync)) == 1
    caplog.clear()

    sync.server.stop()
    wait_until(lambda: _state(sync) is LocationState.UNAVAILABLE, 60, "the outage noticed")
    wait_until(lambda: not _pollers(sync), 30, "the failed poller to end")
    assert not [r for r in caplog.records if r.name == "app.watch.poller"]
    assert [r.name for r in _outage_lines(caplog, sync)] == ["app.engine.slot"]

    sync.server.start()
    wait_until(lambda: _state(sync) is LocationState.OK, 60, "the server is used again")
    assert len(_pollers(sync)) == 1
    write_file(sync.server.root / "new-on-server.txt", "seen by the new poller", mtime=T_OLD)
    sync.wait_converged()
    assert [a.action for a in sync.activity if a.action == "error"] == ["error"]


def test_reopen_backoff_doubles_to_a_minute_and_starts_over_when_back(
    ftp_server: ThreadedFtpServer,
) -> None:
    location = open_location(ftp_server.url(), LocationOptions(connect_timeout=2))
    recorded: list[str] = []
    slot = Slot(location, record=lambda action, path, where, detail: recorded.append(action))
    ftp_server.stop()

    def failed_open() -> None:
        location.close()  # a reopen starts from a new connection, as the engine's does
        with pytest.raises(LocationUnavailable) as failure:
            slot.run(location.open, None)
        assert failure.value.key == location.key  # the engine finds the slot by its key
        slot.fail(failure.value)

    pauses = []
    for _ in range(8):
        failed_open()
        pauses.append(slot.retry_delay)
        assert slot.retry_delay - 1 < slot.next_retry - time.monotonic() <= slot.retry_delay
    assert pauses == [1, 2, 4, 8, 16, 32, REOPEN_MAX, REOPEN_MAX]
    assert recorded == ["error"]  # one record for the outage, none per attempt

    ftp_server.start()

    def reopened() -> bool:
        try:
            slot.run(location.open, None)
        except FileSyncError:
            return False
        return True

    wait_until(reopened, 30, "the server to accept the reopen")
    slot.recovered()
    assert slot.available and slot.retry_delay == REOPEN_FIRST and slot.next_retry == 0.0
    assert recorded == ["error", "available"]

    ftp_server.stop()
    failed_open()
    assert slot.retry_delay == REOPEN_FIRST  # a new outage starts the schedule over
    assert recorded == ["error", "available", "error"]
    location.close()
