"""Holding back a file that is still being written, with a bound for files that never settle.

A download or an export grows for minutes; copying it at each event sends dozens of partial
versions everywhere (issue 9). Before a path is planned, :class:`SettleGate` asks the watcher of
every location whose copy changed whether that file is still being written
(:meth:`Watcher.unsettled`). If one is, the path is parked: the engine plans it again when the
watcher expects it to settle. A file written without pause for ``bound`` seconds (a busy log) is
copied anyway, then again every ``bound`` seconds while it grows, and once more when it settles.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from app.engine.plan import Side, SideState
from app.engine.slot import Slot

if TYPE_CHECKING:  # only watchers make them: a --once run loads no watcher module
    from app.watch.writes import Writing

#: Default seconds of continuous writing after which a file is copied as it is.
SETTLE_BOUND = 60.0
#: Never look again sooner than this (a watcher that says "settles now" is re-asked later).
MIN_RECHECK = 0.05


class Parking(NamedTuple):
    """What to do with a path now: ``hold`` it (no copy), and look again in ``recheck`` s."""

    hold: bool
    recheck: float | None


#: Nothing is being written: sync now (one shared value, asked for every path).
_GO = Parking(hold=False, recheck=None)


class SettleGate:
    """Decides, per path, whether its changed copies are settled enough to be synced."""

    def __init__(self, bound: float = SETTLE_BOUND) -> None:
        self.bound = bound
        #: When a path still being written was last copied anyway (monotonic seconds).
        self._forced: dict[str, float] = {}

    def forget(self, paths: Sequence[str]) -> None:
        """``paths`` are in step everywhere: none of them is still being written."""
        if self._forced:
            for path in paths:
                self._forced.pop(path, None)

    def check(self, path: str, sides: dict[str, Side], slots: dict[str, Slot]) -> Parking:
        """Whether ``path`` must wait; a recheck time whenever one of its copies is unsettled."""
        longest: Writing | None = None
        for key, side in sides.items():
            watcher = slots[key].watcher
            if watcher is None or side.current is None or side.state is SideState.UNCHANGED:
                continue
            writing = watcher.unsettled(path)
            if writing is not None and (longest is None or writing.lasted > longest.lasted):
                longest = writing
        if longest is None:
            if self._forced:
                self._forced.pop(path, None)
            return _GO
        recheck = max(longest.settles_in, MIN_RECHECK)
        now = time.monotonic()
        last = self._forced.get(path)
        if longest.lasted >= self.bound and (last is None or now - last >= self.bound):
            self._forced[path] = now
            return Parking(hold=False, recheck=recheck)
        return Parking(hold=True, recheck=recheck)
