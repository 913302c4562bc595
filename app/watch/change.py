"""The record every watcher puts on the engine's one queue.

Changes are hints, not facts: the engine re-reads the truth (``stat``) for every path a batch
touches, so a duplicated, reordered or stale change is harmless. That is also what makes the
engine's own writes echo-free: when their events come back, the index already agrees.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple


class ChangeKind(enum.Enum):
    """What a watcher saw."""

    #: A file was created, modified or deleted at ``path``.
    FILE = "file"
    #: A file moved from ``path`` to ``dest`` inside the location.
    MOVED = "moved"
    #: A folder moved from ``path`` to ``dest`` inside the location, with everything in it.
    MOVED_TREE = "moved_tree"
    #: Something happened below the folder ``path`` (created, moved in or out, deleted).
    TREE = "tree"
    #: The location could not be read; ``error`` says why. The watcher has stopped: the
    #: engine handles the outage like any other and starts a new watcher when it reopens.
    UNAVAILABLE = "unavailable"


class Change(NamedTuple):
    """One thing a watcher saw in the location whose key is ``location``.

    ``from_scan`` is true when the change was inferred by comparing two listings (polling)
    rather than reported by the OS. Only such deletes go through the mass-delete guard: an
    empty listing from a flaky server looks like "everything deleted", an OS event does not.
    """

    location: str
    kind: ChangeKind
    path: str = ""
    dest: str = ""
    from_scan: bool = False
    error: str = ""


#: Where a watcher puts its changes: the engine's one queue (``queue.put``).
ChangeSink = Callable[[Change], None]
