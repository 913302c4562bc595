"""A folder writes a large group in parts, one part's copies overlapping the last one's pass.

While a part's temp files are made durable and renamed (on a thread of its own), the next
part's temp files are written. Each part must still be renamed only after a durability pass
that began once all of its temp files were written, and a stop must leave no temp file and
no partial file behind.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from app.engine.stopping import SyncStopped
from app.locations.base import FileMeta, GroupStopped, Location, WriteJob
from app.locations.folder import batch, durability
from app.locations.folder.durability import Unsettled
from tests.helpers import tree
from tests.writes import job

SECOND = 1_000_000_000
#: Three parts: two full ones and the rest.
FILES = 2 * batch.PART_FILES + 76
#: The first durability pass is this slow (a slow disk), so the overlap shows whatever the load.
SLOW_PASS = 0.5


def _noting(
    events: list[tuple[str, float, float]], name: str, real: Callable[..., Any], slow: bool = False
) -> Callable[..., Any]:
    """``real``, noting when each call began and ended (and the first one slowed down)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            if slow and not any(e[0] == name for e in events):
                time.sleep(SLOW_PASS)
            return real(*args, **kwargs)
        finally:
            events.append((name, began, time.monotonic()))

    return call


def test_each_part_is_renamed_after_a_pass_that_followed_its_copies(
    folder_location: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(folder_location.local_paths()[0])
    files = {f"d{i % 9}/f{i:04d}.bin": bytes([i % 251]) * (i % 300) for i in range(FILES)}
    jobs = [job(p, data, 1_600_000_000 + i) for i, (p, data) in enumerate(files.items())]
    events: list[tuple[str, float, float]] = []
    monkeypatch.setattr(batch, "_stage_all", _noting(events, "stage", batch._stage_all))
    monkeypatch.setattr(batch, "_land_new", _noting(events, "land", batch._land_new))
    monkeypatch.setattr(batch, "syncfs_each", _noting(events, "pass", batch.syncfs_each, True))
    sync_with = _noting(events, "pass", Unsettled.sync_with, slow=True)
    monkeypatch.setattr(Unsettled, "sync_with", sync_with)
    outcomes = folder_location.write_many(jobs, parallel_reads=True)
    assert all(isinstance(o, FileMeta) for o in outcomes), outcomes
    assert tree(root) == files
    assert not list(root.rglob(".filesync-tmp-*"))
    stages = sorted((e for e in events if e[0] == "stage"), key=lambda e: e[1])
    lands = sorted((e for e in events if e[0] == "land"), key=lambda e: e[1])
    all_passes = [e for e in events if e[0] == "pass"]
    assert len(stages) == len(lands) == 3, events
    for (_, _, copied), (_, landing, _) in zip(stages, lands, strict=True):
        assert any(copied <= began and ended <= landing for _, began, ended in all_passes), (
            "a part was renamed before a pass that followed its copies"
        )
    first_pass_ended = min(ended for _, _, ended in all_passes)
    assert stages[1][1] < first_pass_ended, "the second part waited for the first one's pass"


def _stopped() -> contextlib.AbstractContextManager[BinaryIO]:
    raise KeyboardInterrupt  # anything that is not one file's failure ends the group


def _engine_stops() -> contextlib.AbstractContextManager[BinaryIO]:
    raise SyncStopped("stopping")  # as a source's stream raises it once the engine stops


def test_a_stop_in_the_second_part_leaves_the_first_whole_recorded_and_no_temp_file(
    folder_location: Location,
) -> None:
    root = Path(folder_location.local_paths()[0])
    files = {f"d{i % 9}/f{i:04d}.bin": bytes([i % 251]) * (i % 300 + 1) for i in range(FILES)}
    jobs = [job(p, data) for p, data in files.items()]
    jobs.insert(batch.PART_FILES + 100, WriteJob("stop", _stopped, SECOND, None))
    with pytest.raises(GroupStopped) as stopped:
        folder_location.write_many(jobs, parallel_reads=True)
    assert isinstance(stopped.value.stop, KeyboardInterrupt)
    first = dict(list(files.items())[: batch.PART_FILES])
    assert tree(root) == first  # the part being renamed ended first; nothing after it
    assert not list(root.rglob(".filesync-tmp-*"))
    landed = stopped.value.outcomes  # for the engine to record: what a scan reports
    assert len(landed) == batch.PART_FILES
    listing = folder_location.scan()
    assert [listing[path] for path in first] == landed


def test_a_failed_pass_is_reported_even_when_a_stop_ends_the_group(
    folder_location: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first part's pass fails (the disk said EIO) while the second part is written, and a
    stop ends the group: the failure must reach the engine, which then records neither this
    group nor the earlier one that pass was to make durable. The stop alone made the engine
    settle "what was pending", nothing by then, and record the earlier group."""
    passes: list[int] = []
    real = durability._syncfs

    def failing_from_the_second(readable: int) -> OSError | None:
        passes.append(readable)
        return OSError(errno.EIO, "syncfs failed") if len(passes) >= 2 else real(readable)

    monkeypatch.setattr(durability, "_syncfs", failing_from_the_second)
    earlier = [job(f"g0/f{n:02d}", b"earlier") for n in range(20)]
    assert all(isinstance(o, FileMeta) for o in folder_location.write_many_unsettled(earlier))
    jobs = [job(f"g1/f{n:04d}", b"first part") for n in range(batch.PART_FILES)]
    jobs.append(WriteJob("g1/stop", _engine_stops, SECOND, None))
    with pytest.raises(OSError) as raised:
        folder_location.write_many_unsettled(jobs)
    assert raised.value.errno == errno.EIO
    root = Path(folder_location.local_paths()[0])
    assert not list(root.rglob(".filesync-tmp-*"))
