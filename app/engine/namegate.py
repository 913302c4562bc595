"""Which locations take part in a path, by the names each one declares it can hold.

A file named ``a\\b.txt`` or with bytes that are not UTF-8 is fine in a Linux folder but cannot
go into a ZIP archive or onto an FTP server. Such a path is synced between the locations that
can hold it; every other location is simply left out of it: not asked to stat it, not written,
not marked stale, never reported unavailable for it. Each (location, name) pair is reported
once per run, as a warning and a ``skipped`` activity, however often the path is planned.
"""

from __future__ import annotations

import logging

from app.engine.slot import Slot
from app.engine.status import Recorder
from app.locations.names import NamePolicy
from app.messages import shown

log = logging.getLogger(__name__)


#: Reported names are remembered up to this many; beyond it a name may be reported again.
MAX_REMEMBERED = 100_000


class NameGate:
    """Answers "can this location hold this path?" and warns once per name it cannot."""

    def __init__(self, record: Recorder) -> None:
        self.record = record
        self._reported: set[tuple[str, str]] = set()
        #: The last name a policy allowed: the engine asks for each location in turn, and
        #: most locations share a policy (an initial sync asked 30,000 times for 10,000 paths).
        self._allowed: tuple[NamePolicy | None, str] = (None, "")

    def holds(self, slot: Slot, path: str) -> bool:
        """True when ``slot``'s location can hold ``path``; otherwise report it (once)."""
        names = slot.location.capabilities.names
        allowed = self._allowed
        if allowed[1] is path and allowed[0] is names:
            return True
        why = names.refusal(path)
        if why is None:
            self._allowed = (names, path)
            return True
        key = (slot.key, path)
        if key not in self._reported:
            if len(self._reported) >= MAX_REMEMBERED:
                self._reported.clear()
            self._reported.add(key)
            name = slot.location.name
            log.warning("%s: not syncing %s there: %s", name, shown(path), why)
            self.record("skipped", path, name, f"this location cannot hold the name: {why}")
        return False
