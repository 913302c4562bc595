"""Finding, a chunk at a time, the paths that one location has and no location knows yet.

An initial sync into empty locations is made of such paths, and :func:`app.engine.sides.new_in_one`
decides each the same way: copy it from the one location that has it to every other, record it
there. Planned one path at a time, building each path's sides and decision and its bookkeeping
cost the engine thread ~25 µs a path, and that Python ran beside the copy threads, which need the
interpreter lock between their system calls: 10,000 new files took 1.7x `rsync -a`, where the
copies alone take rsync's time. :func:`split_new` finds them with a few passes over the chunk
(each a comprehension or a set operation) instead, so the syncer can hand them to the groups of
copies in bulk.

A path is taken only where planning it alone would decide exactly that and nothing else:
every location is listed and takes its copies in groups (``batched_writes``), none has a row
for the path or is behind or failing on it, none holds its delete or a link on its way, every
one can hold its name, the path is listed by exactly one location, and that location's watcher
does not see it still being written. Everything else goes through the planner as before, after
the new files; so a path is not taken either where one of the others is its folder or lies in
it (a file deleted where a folder of the same name is new must be gone first).
"""

from __future__ import annotations

from app.engine.links import HeldLinks
from app.engine.namegate import NameGate
from app.engine.slot import Slot
from app.locations.base import Listing
from app.locations.names import plain_names


def split_new(
    paths: list[str],
    listings: dict[str, Listing],
    slots: dict[str, Slot],
    links: HeldLinks,
    names: NameGate,
) -> tuple[dict[str, list[str]], list[str]]:
    """The paths new in one location (by that location, in ``paths``' order), and the rest.

    The rest keeps ``paths``' order; it is all of ``paths`` where the chunk's locations do not
    allow the shortcut at all (one unavailable, one written one file at a time, links held).
    """
    if len(listings) < 2 or listings.keys() != slots.keys():
        return {}, paths  # an unavailable location is marked behind: the planner does that
    listed = [slots[key] for key in listings]
    if any(not s.location.capabilities.batched_writes or links.has_any(s.key) for s in listed):
        return {}, paths
    candidates = paths
    for slot in listed:
        if slot.known:
            known = slot.known
            candidates = [p for p in candidates if p not in known]
        for held in (slot.stale, slot.held_deletes, slot.failing):
            if held:
                candidates = [p for p in candidates if p not in held]
    if not candidates:
        return {}, paths
    if not plain_names(candidates):  # a rare odd name: each location's policy decides
        candidates = [p for p in candidates if all(names.holds(s, p) for s in listed)]
    new: dict[str, list[str]] = {}
    for key, listing in listings.items():
        mine = [p for p in candidates if p in listing]
        for other, elsewhere in listings.items():
            if other != key and mine:
                mine = [p for p in mine if p not in elsewhere]
        watcher = slots[key].watcher
        if watcher is not None:  # a file still being written is parked by the planner
            mine = [p for p in mine if watcher.unsettled(p) is None]
        if mine:
            new[key] = mine
    if not new:
        return {}, paths
    taken = set[str]().union(*new.values())
    rest = [p for p in paths if p not in taken]
    if rest:  # what goes first must not stand in the way of what the planner does after
        new = _clear_of(new, rest)
        taken = set[str]().union(*new.values())
        rest = [p for p in paths if p not in taken]
    return {key: mine for key, mine in new.items() if mine}, rest


def _clear_of(new: dict[str, list[str]], rest: list[str]) -> dict[str, list[str]]:
    """``new`` without the paths that a path of ``rest`` is a folder of, or that are folders
    of one: the new files are copied before the rest is planned, and a file deleted to make
    room for a new folder of the same name (or a folder for a file) must go first, as it does
    in the planner's order."""
    planned = set(rest)
    folders = {path[:cut] for path in rest for cut in _slashes(path)}
    return {
        key: [
            p
            for p in mine
            if p not in folders and not any(p[:cut] in planned for cut in _slashes(p))
        ]
        for key, mine in new.items()
    }


def _slashes(path: str) -> list[int]:
    """Where ``path``'s folders end: ``"a/b/c"`` -> ``[1, 3]`` (``"a"``, ``"a/b"``)."""
    return [n for n, char in enumerate(path) if char == "/"]
