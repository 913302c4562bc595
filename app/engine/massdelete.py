"""The mass-delete guard: many files vanishing at once is held, not propagated.

An unmounted disk, an emptied server folder or a flaky listing all look like "everything was
deleted". Deleting everywhere else would be the one mistake a sync tool cannot undo, so when
more than half of a location's files (and at least :data:`MASS_DELETE_MIN`) vanish together,
their deletes are held until the user confirms them (``--allow-mass-delete``, "Allow deletes").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from app.engine.slot import Slot
from app.engine.status import LocationState, Recorder
from app.errors import MassDeleteHeld

log = logging.getLogger(__name__)

#: A scan may miss this many indexed files before the mass-delete guard looks at the ratio.
MASS_DELETE_MIN = 5


def guard_mass_delete(
    slot: Slot, missing: Iterable[str], record: Recorder, detail: str = ""
) -> set[str]:
    """Hold ``slot``'s deletes when too many vanished at once; return the held ones."""
    missing = set(missing)
    threshold = max(MASS_DELETE_MIN, len(slot.known) // 2)
    if len(missing) <= threshold:
        return set()
    error = MassDeleteHeld(
        f"{len(missing)} of {len(slot.known)} files vanished at once{detail}; their deletes "
        "are held. If that was intended, run again with --allow-mass-delete",
        location=slot.location.name,
    )
    if not missing <= slot.held_deletes:
        log.error("%s", error)
        record("held", "", slot.location.name, str(error))
    slot.held_deletes |= missing
    slot.state = LocationState.ERROR
    slot.error = str(error)
    return missing
