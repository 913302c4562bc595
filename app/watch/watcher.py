"""The small interface every watcher implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.locations.base import FileMeta
    from app.watch.writes import Writing


class Watcher(ABC):
    """Runs in its own thread(s) and pushes changes into the engine's queue until stopped."""

    @abstractmethod
    def start(self) -> None:
        """Begin watching. Called BEFORE the initial scan, so nothing in between is missed."""

    @abstractmethod
    def stop(self) -> None:
        """Stop and join every thread this watcher started. Safe to call twice."""

    def expect(self, path: str, meta: FileMeta | None) -> None:  # noqa: B027
        """The engine just made ``path`` hold ``meta`` (None: removed it) in this location.

        OS events need no help; a poller takes it into the listing it diffs against, so a
        change made after the engine's write but before the next poll is not missed.
        """

    def unsettled(self, path: str) -> Writing | None:
        """How long ``path`` has been written, if this watcher saw it still being written.

        None means it may be copied now (settled, or this watcher cannot tell). The engine
        parks a path that is not settled instead of copying a partial file.
        """
        return None
