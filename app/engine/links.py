"""Paths held because a location has a symbolic link at or above them.

FileSync never follows a link inside a location (a folder moved to another disk and replaced by
a link, a link to a shared folder): the location skips it, reports it through
:meth:`~app.locations.base.Location.links`, and refuses to write, rename or delete through it.
For the engine such a path is neither present nor deleted there: that location simply has no
say on it, like a location holding its deletes, so its files are never deleted elsewhere. The
index rows stay, and the path is marked stale for that location when it changes elsewhere, so it
catches up when the link is replaced by the real folder. Each link is reported once (again only
if it disappears and comes back).
"""

from __future__ import annotations

import logging

from app.engine.ignore import IgnoreRules
from app.engine.slot import Slot
from app.engine.status import Recorder
from app.messages import shown

log = logging.getLogger(__name__)


def link_message(link: str) -> str:
    """What a user reads about a link: what FileSync does with it and how to resolve it."""
    return (
        f"{shown(link)} is a symbolic link; FileSync does not follow links. Its files are not "
        "synced here and not deleted elsewhere. Replace the link with the real folder or file, "
        "or add it to .filesyncignore"
    )


class HeldLinks:
    """The links each location skipped, and whether a path is held by one of them."""

    def __init__(self, record: Recorder) -> None:
        self.record = record
        self._links: dict[str, frozenset[str]] = {}
        self._reported: dict[str, set[str]] = {}

    def refresh(self, slot: Slot, ignore: IgnoreRules) -> None:
        """Take the links ``slot``'s location reports now; warn about each new one once."""
        links = slot.location.links()
        self._links[slot.key] = links
        reported = self._reported.setdefault(slot.key, set())
        reported.intersection_update(links)
        for link in sorted(links - reported):
            reported.add(link)
            if ignore.ignored(link) or ignore.ignored(link + "/"):
                continue
            message = link_message(link)
            log.warning("%s: %s", slot.location.name, message)
            self.record("held", link, slot.location.name, message)

    def has_any(self, key: str) -> bool:
        """True when location ``key`` has a link anywhere; False: :meth:`holds` is False for
        every path there."""
        return bool(self._links.get(key))

    def holds(self, key: str, path: str) -> bool:
        """True when location ``key`` has a link at ``path`` or at one of its folders."""
        links = self._links.get(key)
        if not links:
            return False
        parts = path.split("/")
        return any("/".join(parts[:n]) in links for n in range(1, len(parts) + 1))
