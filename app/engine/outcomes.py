"""What follows a path's sync in each location: caught up, behind, parked, or tried again.

The :class:`~app.engine.sync.Syncer` runs the steps (read, plan, apply); when a path, a copy,
a batch or a whole location fails it hands the failure here, and this module decides what to
remember and when to try again: a location that stopped answering parks the path until it
answers, an unavailable one goes to :meth:`Slot.fail <app.engine.slot.Slot.fail>`, a path
changed or still written is planned again after the debounce, and any other refusal is retried
with a growing pause (:func:`~app.engine.failures.retry_delay`). Only the engine thread calls
it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from app.engine.apply import Applier
from app.engine.failures import retry_delay, target_failed
from app.engine.ignore import IgnoreRules
from app.engine.index import StateIndex
from app.engine.links import HeldLinks
from app.engine.namegate import NameGate
from app.engine.plan import Side
from app.engine.retries import RETRY_FAILED_PATH_AFTER, RetryTable
from app.engine.slot import Slot
from app.engine.status import Recorder
from app.errors import (
    FileChanged,
    FileSyncError,
    FileVanished,
    LinkedPath,
    LocationBusy,
    LocationUnavailable,
    WritesDropped,
)
from app.locations.base import Listing
from app.messages import shown

if TYPE_CHECKING:
    from app.engine.copies import CopyFailed

log = logging.getLogger(__name__)


class Outcomes:
    """Keeps each location's "behind on this path" marks and schedules what to try again.

    ``ignore`` gives the current ignore rules (they change when the ignore files do).
    ``disturbed`` turns true when anything was tried, failed or waited: a location may have
    changed, so ``--once`` must read every location again before saying "in step".
    """

    def __init__(
        self,
        slots: dict[str, Slot],
        index: StateIndex,
        record: Recorder,
        *,
        applier: Applier,
        retries: RetryTable,
        links: HeldLinks,
        names: NameGate,
        ignore: Callable[[], IgnoreRules],
        debounce: float,
    ) -> None:
        self.slots = slots
        self.index = index
        self.record = record
        self.applier = applier
        self.retries = retries
        self.links = links
        self.names = names
        self.ignore = ignore
        self.debounce = debounce
        self.disturbed = False

    def unlanded(self, slot: Slot, exc: Exception) -> None:
        """``slot``'s batch may not have landed: its rows go back, its paths are synced again.

        A batch that landed without some writes (another program changed those files there
        after they were staged) puts back only their rows. Behind on them, the location's
        changed version then competes with the one the engine wrote elsewhere (concurrent
        edits: the newer wins, the other is kept as a conflict copy).
        """
        self.disturbed = True
        dropped = exc.paths if isinstance(exc, WritesDropped) else None
        paths = self.applier.landing.revert(slot, self.index, dropped)
        if not paths:
            return
        for path in paths:
            self.mark_behind(slot, path)
        if dropped is not None:
            log.info("%s; planning them again", exc)
            for path in paths:
                self.retries.later(self.slots, path, self.debounce)
            return
        if isinstance(exc, LocationBusy):
            slot.parked.update(paths)
            return
        log.warning("%s; %d changes there will be tried again", exc, len(paths))
        self.record("error", "", slot.location.name, str(exc))
        for path in paths:
            self.retries.later([slot.key], path, RETRY_FAILED_PATH_AFTER)

    def caught_up(self, key: str, path: str) -> None:
        """``key`` holds the latest version of ``path`` now."""
        slot = self.slots[key]
        slot.clear_failed(path)
        if path in slot.stale:
            slot.stale.discard(path)
            self.index.clear_stale(key, path)

    def copies_failed(self, failed: list[CopyFailed], listings: dict[str, Listing]) -> None:
        """Copies of a group that did not land, each handled as a copy failing on its own.

        Unlike a copy failing on its own, the decision's rows are written already (the
        source's says the winner), so a target whose copy failed, for whatever reason, is
        marked behind. Otherwise the next plan would find nothing to do there (the copy failed
        for its source's sake), or take the target's version for the only edit: a save made
        there while the winner was on its way (the copy's ``FileChanged``), or a conflict's
        loser, would overwrite the winner with no conflict copy. Behind, its changed version
        competes with the winner as a concurrent edit: the newer one wins, the other is kept.
        """
        for copy in failed:
            slot = self.slots[copy.key]
            exc = copy.error
            self.mark_behind(slot, copy.path)
            if copy.source_failed or isinstance(exc, FileChanged):
                self.path_failed(copy.path, exc, listings)
            elif isinstance(exc, LocationUnavailable | LocationBusy):
                self.target_missed(copy.key, copy.path, exc, listings)
            else:
                why = target_failed("write", copy.path, slot.location.name, exc)
                self.target_missed(copy.key, copy.path, why, listings)

    def path_failed(
        self, path: str, exc: FileSyncError | OSError, listings: dict[str, Listing]
    ) -> None:
        """Syncing ``path`` failed for every location: plan it again later (or at once)."""
        if isinstance(exc, LocationBusy):  # comparing contents: a location stopped answering
            self.park({path})
        elif isinstance(exc, LocationUnavailable):  # the source, or a location compared
            slot = self.slots.get(exc.key or "")
            if slot is not None:
                slot.fail(exc, path)
                listings.pop(slot.key, None)
            else:
                log.error("%s", exc)
                self.record("error", path, exc.location or "", str(exc))
        elif isinstance(exc, FileVanished):
            log.debug("%s vanished while syncing; its own event will follow", shown(path))
        elif isinstance(exc, LinkedPath):  # a link appeared since the stat: hold the path there
            slot = self.slots.get(exc.key or "")
            if slot is not None:
                self.links.refresh(slot, self.ignore())
            self.retries.later(listings, path, self.debounce)
        elif isinstance(exc, FileChanged):
            log.info("%s changed while it was being synced; planning it again", shown(path))
            self.retries.later(listings, path, self.debounce)
        else:
            log.warning("cannot sync %s now (%s); will retry", shown(path), exc)
            self.record("error", path, "", str(exc))
            self.retries.later(listings, path, RETRY_FAILED_PATH_AFTER)
        self.disturbed = True  # the path is planned again later: --once reads everything again

    def target_missed(
        self, key: str, path: str, exc: FileSyncError, listings: dict[str, Listing]
    ) -> None:
        """Only ``key`` missed this change: it is marked behind on ``path`` and retried."""
        self.disturbed = True
        slot = self.slots[key]
        self.mark_behind(slot, path)
        if isinstance(exc, LocationBusy):
            slot.parked.add(path)
            return
        if isinstance(exc, LocationUnavailable):
            slot.fail(exc, path)
            listings.pop(key, None)
            return
        self.record("error", path, slot.location.name, str(exc))
        attempts = slot.mark_failed(path, str(exc))
        if attempts == 1:
            log.warning("%s", exc)
        self.retries.later([key], path, retry_delay(attempts))

    def park(self, paths: Iterable[str]) -> None:
        """Remember ``paths`` for every reachable location that is not answering now."""
        for slot in self.slots.values():
            if slot.available and slot.worker.stalled:
                slot.parked.update(paths)

    def remember_missed(self, path: str, sides: dict[str, Side]) -> None:
        """Mark ``path`` stale for every location that was not part of this decision."""
        for slot in self.slots.values():
            if slot.key not in sides and self.names.holds(slot, path):
                self.mark_behind(slot, path)

    def mark_behind(self, slot: Slot, path: str) -> None:
        """``slot`` missed the latest change of ``path`` (kept in the state index)."""
        if path not in slot.stale:
            slot.stale.add(path)
            self.index.mark_stale(slot.key, path)
