"""The shortcut of a full sync: paths every location holds exactly as the index recorded them.

For such a path the planner has nothing to do: every side is unchanged and present, so there is
no changed version, no delete and no location lacking the file (:func:`app.engine.plan.plan_path`
returns a no-op). A restart or a periodic rescan of 100,000 files where nothing changed would
otherwise build the sides of, and plan, every one of them; this check is a few dictionary
lookups a location.

A path goes through the planner as before whenever any listed location lacks it (a delete made
while FileSync was stopped, or a file new elsewhere), holds other metas than its index row (an
edit: size, mtime, or the tag that catches a same-size save within the same second), has no row
for it (a new file, a location added later), is behind on it (stale) or is failing on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.engine.slot import Slot
from app.locations.base import Listing


def in_step(path: str, listings: dict[str, Listing], slots: dict[str, Slot]) -> bool:
    """True when every listed location holds ``path`` exactly as its index row says."""
    for key, listing in listings.items():
        slot = slots[key]
        current = listing.get(path)
        if (
            current is None
            or current != slot.known.get(path)
            or path in slot.stale
            or path in slot.failing
        ):
            return False
    return True


def all_in_step(paths: Sequence[str], listings: dict[str, Listing], slots: dict[str, Slot]) -> bool:
    """True when every path of ``paths`` is :func:`in_step` (a chunk that needs no batch).

    The same test as :func:`in_step`, a location at a time over the whole chunk, so that the
    loops run in C: a chunk of a tree where nothing changed costs a few lookups a path.
    """
    for key, listing in listings.items():
        slot = slots[key]
        current = list(map(listing.get, paths))
        if (
            None in current
            or current != list(map(slot.known.get, paths))
            or not slot.stale.isdisjoint(paths)
            or not slot.failing.keys().isdisjoint(paths)
        ):
            return False
    return True


def every_location_in_step(listings: Mapping[str, Listing], slots: Mapping[str, Slot]) -> bool:
    """True when every listed location holds exactly its index rows, all of them the same
    paths, and none is stale or failing anywhere: then every path is :func:`in_step`.

    Where it holds (a restart or a rescan with nothing changed), a full sync has nothing to
    plan and its convergence check nothing to check; the test is two dictionary comparisons a
    location, in C, instead of a lookup of every path in every listing and index mirror. An
    ignored path that differs makes it False: the path-by-path checks then decide.
    """
    first: Listing | None = None
    for key, listing in listings.items():
        slot = slots[key]
        if slot.stale or slot.failing or listing != slot.known:
            return False
        if first is None:
            first = listing
        elif listing.keys() != first.keys():
            return False
    return True
