"""The location calls the engine hands to a location's worker, and their late results.

Each function here runs on the worker thread of the location it is given (see
:mod:`app.engine.workers`) and only does that location's I/O; whatever it returns is recorded by
the engine thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future

from app.engine.slot import Slot
from app.errors import FileSyncError, LocationBusy
from app.locations.base import IGNORE_FILE, FileMeta, Listing, Location
from app.watch.change import ChangeSink
from app.watch.watcher import Watcher


@contextlib.contextmanager
def batch(
    slot: Slot, deadline: float | None, unlanded: Callable[[Exception], None]
) -> Iterator[None]:
    """``slot.location.batch()`` entered and left on its worker (a ZIP's lock is per thread).

    The end is queued even when the location stalled meanwhile, so a batch is always closed.
    When the end failed, or its outcome is not known in time, ``unlanded`` is told: what the
    batch wrote may not be in the location (see :mod:`app.engine.landing`).
    """
    ctx = slot.location.batch()
    try:
        slot.run(ctx.__enter__, deadline, lambda _: slot.worker.post(end_batch(ctx)))
    except LocationBusy as exc:
        try:
            yield
        finally:
            unlanded(exc)
        return
    try:
        yield
    finally:
        if slot.worker.stalled:
            slot.worker.post(end_batch(ctx))
            unlanded(LocationBusy("not answering", location=slot.location.name))
        else:
            try:
                slot.run(end_batch(ctx), deadline)
            except (FileSyncError, OSError) as exc:
                unlanded(exc)


def scan(location: Location) -> Listing:
    location.check_available()
    return location.scan()


def stat(location: Location, paths: list[str]) -> dict[str, FileMeta | None]:
    if not paths:
        return {}
    location.check_available()
    return location.stat_many(paths)


def read_ignore_file(location: Location) -> list[str]:
    with location.open_read(IGNORE_FILE) as f:
        return f.read(1 << 20).decode("utf-8", "replace").splitlines()


def keep_late_stats(slot: Slot, future: Future[dict[str, FileMeta | None]]) -> None:
    """A stat that missed its deadline ended: the catch-up uses it instead of asking again."""
    if future.exception() is None:
        slot.late_stats.update(future.result())


def keep_late_listing(slot: Slot, future: Future[Listing]) -> None:
    """A scan that missed its deadline ended: its listing serves the catch-up."""
    if future.exception() is None:
        slot.late_listing = future.result()


def end_batch(ctx: contextlib.AbstractContextManager[None]) -> Callable[[], object]:
    return lambda: ctx.__exit__(None, None, None)


def moved_here(location: Location, src: str, dst: str, old: FileMeta | None) -> FileMeta | None:
    """``dst``'s meta if it is plainly ``src`` (as indexed) renamed, else None."""
    moved = location.stat(dst)
    if moved is None or not moved.same_version(old) or location.stat(src):
        return None
    return moved


def rename_if_unchanged(
    location: Location, src: str, dst: str, indexed: FileMeta
) -> FileMeta | None:
    """Rename ``src`` to ``dst`` if ``src`` is as indexed and ``dst`` is free; else None."""
    if location.stat(src) != indexed or location.stat(dst) is not None:
        return None
    with location.batch():
        return location.rename(src, dst)


def open_and_watch(
    location: Location,
    has_history: bool,
    old: Watcher | None,
    sink: ChangeSink | None,
    poll_interval: float | None,
) -> Watcher | None:
    """Open and adopt ``location`` and (with a ``sink``) start a new watcher; on its worker.

    The watchers' modules load with the first watcher: a ``--once`` run watches nothing.
    """
    location.open()
    location.adopt(has_history)
    if sink is None:
        return None
    from app.watch.choose import watcher_for

    if old is not None:  # its watch died with the old root
        old.stop()
    watcher = watcher_for(location, sink, poll_interval)
    watcher.start()
    return watcher
