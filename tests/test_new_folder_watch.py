"""Files written into a new folder before its watch exists are not taken for writes in progress.

On a loaded machine the inotify watch of a new folder may start after files were written into
it; watchdog then reports each file it finds there as created, and no close follows. The rig
forces that ordering: it holds the watcher's inotify reader (the thread that adds the watch of a
new folder) while the files are written. Real watchdog observer, real files.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from app.locations.base import Location
from app.watch.change import Change
from app.watch.local import LocalWatcher
from tests.helpers import wait_until, write_file


@contextmanager
def late_watch(watcher: LocalWatcher) -> Iterator[None]:
    """No new folder gets its inotify watch until the block ends (watchdog's reader waits)."""
    reader = getattr(watcher._observer, "_inotify_fd", None)  # watchdog's InotifyFD thread
    lock = getattr(reader, "_lock", None)
    assert isinstance(lock, type(threading.Lock())), "watchdog's inotify reader changed"
    with lock:
        yield


@contextmanager
def watching(location: Location) -> Iterator[tuple[LocalWatcher, list[Change]]]:
    """A started watcher on ``location`` and the changes it reported so far."""
    changes: list[Change] = []
    watcher = LocalWatcher(location, changes.append, poll_interval=0.1)
    watcher.start()
    try:
        yield watcher, changes
    finally:
        watcher.stop()


def _reported(changes: list[Change], paths: list[str]) -> bool:
    seen = {c.path for c in list(changes)}
    return all(p in seen for p in paths)


def test_files_written_before_a_new_folders_watch_are_settled(
    folder_location: Location,
) -> None:
    """Found whole in the new folder: copied at once, not held back as if still being written."""
    root = folder_location.local_paths()[0]
    paths = [f"burst/f{i:03d}.txt" for i in range(20)]
    with watching(folder_location) as (watcher, changes):
        with late_watch(watcher):
            for path in paths:
                write_file(root / path, f"{path}\n" * 20)
        wait_until(lambda: _reported(changes, paths), message="the new folder's files reported")
        assert [p for p in paths if watcher.unsettled(p) is not None] == []


def test_a_file_written_on_after_its_folders_watch_started_waits(
    folder_location: Location,
) -> None:
    """Found in the new folder, then written again: that write is a write, and is waited for."""
    root = folder_location.local_paths()[0]
    path = "export/video.bin"
    with watching(folder_location) as (watcher, changes):
        with late_watch(watcher):
            (root / "export").mkdir()
            out = open(root / path, "wb")  # noqa: SIM115 - closed below, written on meanwhile
            out.write(b"first chunk")
            out.flush()
        try:
            wait_until(lambda: _reported(changes, [path]), message="the file reported")

            def written_on() -> bool:
                out.write(b"one more chunk")
                out.flush()
                return watcher.unsettled(path) is not None

            wait_until(written_on, message="the write after the watch is seen as one")
        finally:
            out.close()
