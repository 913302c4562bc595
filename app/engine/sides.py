"""Each location's view of one path, as the pure planner (:mod:`app.engine.plan`) wants it.

A :class:`~app.engine.plan.Side` pairs what a location holds now with what the state index
last recorded for it there. A location holding the path's delete (mass-delete guard), holding
it behind a symbolic link, or unable to hold its name has no say in the decision.
"""

from __future__ import annotations

from app.engine.apply import Applier
from app.engine.links import HeldLinks
from app.engine.namegate import NameGate
from app.engine.plan import Decision, Side, plan_path
from app.engine.slot import Slot
from app.locations.base import Listing


class Sides:
    """Builds the planner's input for a path and asks the planner."""

    def __init__(
        self, slots: dict[str, Slot], applier: Applier, links: HeldLinks, names: NameGate
    ) -> None:
        self.slots = slots
        self.applier = applier
        self.links = links
        self.names = names

    def of(self, path: str, listings: dict[str, Listing]) -> dict[str, Side]:
        """Each listed location's view of ``path``, leaving out those that have no say."""
        sides = {}
        for key, listing in listings.items():
            slot = self.slots[key]
            if (
                path in slot.held_deletes
                or self.links.holds(key, path)
                or not self.names.holds(slot, path)
            ):
                continue
            caps = slot.location.capabilities
            sides[key] = Side(
                key,
                listing.get(path),
                slot.known.get(path),
                caps.mtime_precision_ns,
                caps.can_set_mtime,
            )
        return sides

    def decide(self, path: str, sides: dict[str, Side]) -> Decision:
        """The planner's decision for ``path`` given these sides (may compare file bytes)."""
        stale = frozenset(k for k in sides if path in self.slots[k].stale)
        if not stale and (new := new_in_one(sides)) is not None:
            return new
        same = self.applier.same_content(self.slots, path)
        return plan_path(list(sides.values()), same, stale)


def new_in_one(sides: dict[str, Side]) -> Decision | None:
    """The plan for a file that one location has and no location has a row for, else None.

    Most paths of an initial sync are such: :func:`plan_path` decides them the same way (copy
    to the others, record the source) but costs several times more, 10,000 times over.
    """
    source = None
    for side in sides.values():
        if side.indexed is not None:
            return None
        if side.current is not None:
            if source is not None:
                return None
            source = side.key
    if source is None or len(sides) < 2:
        return None
    return Decision(source=source, copy_to=tuple(k for k in sides if k != source), record=(source,))
