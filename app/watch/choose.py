"""Choosing a location's watcher from what its kind declares.

A kind that reports OS events (``Capabilities.native_events``, a folder on a local disk) gets
the watchdog watcher; every other kind is polled through its ``scan``. The choice is made
from the declared capabilities alone, here in the watch layer, so that locations know
nothing about watching and the watch layer names no kind. A folder whose OS events miss
changes made elsewhere (``poll_as_well``: a network or FUSE mount, or ``?poll=``) is watched
and polled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.watch.poller import PollingWatcher

if TYPE_CHECKING:
    from app.locations.base import Location
    from app.watch.change import ChangeSink
    from app.watch.watcher import Watcher


def watcher_for(
    location: Location, sink: ChangeSink, poll_interval: float | None = None
) -> Watcher:
    """Return a watcher (not started) that feeds ``location``'s changes to ``sink``.

    It polls every ``poll_interval`` seconds if given, else at the location's own interval.
    """
    if poll_interval is None:
        poll_interval = location.poll_interval
    if not location.capabilities.native_events:
        return PollingWatcher(location, sink, poll_interval)
    from app.watch.local import LocalWatcher  # watchdog (~5 MiB): only for a watched run

    poll_as_well = location.capabilities.poll_as_well
    return LocalWatcher(location, sink, poll_interval, poll_as_well=poll_as_well)
