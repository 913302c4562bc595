"""Reading the truth from the locations: full scans, stats of some paths, the ignore files.

Every read runs on the location's own worker (:mod:`app.engine.workers`), all locations at
once, and waits at most ``io.deadline``: a location that does not answer in time is left out
and caught up later with what it answered (``late_listing``, ``late_stats``). A location that
cannot be read at all is marked unavailable here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial

from app.engine import calls
from app.engine.ignore import IgnoreRules
from app.engine.links import HeldLinks
from app.engine.namegate import NameGate
from app.engine.slot import Slot
from app.engine.workers import SlotIo
from app.errors import FileSyncError, FileVanished, LocationBusy
from app.locations.base import IGNORE_FILE, FileMeta, Listing
from app.messages import shown

log = logging.getLogger(__name__)


class Reader:
    """Scans and stats the engine's locations for the :class:`~app.engine.sync.Syncer`."""

    def __init__(
        self,
        slots: dict[str, Slot],
        io: SlotIo,
        *,
        links: HeldLinks,
        names: NameGate,
        check_stop: Callable[[], None],
    ) -> None:
        self.slots = slots
        self.io = io
        self.links = links
        self.names = names
        self.check_stop = check_stop

    def available(self) -> list[Slot]:
        """The locations that can be read and written now (reachable, and answering)."""
        return [s for s in self.slots.values() if s.ready]

    def ignore_rules(self, base: tuple[str, ...]) -> IgnoreRules:
        """``base`` patterns merged with every available root's ``.filesyncignore``."""
        patterns: list[str] = list(base)
        for slot in self.available():
            try:
                patterns += slot.run(
                    partial(calls.read_ignore_file, slot.location), self.io.deadline
                )
            except FileVanished:
                continue
            except LocationBusy:
                slot.needs_full = True  # its patterns count again once it answers
            except (FileSyncError, OSError) as exc:
                log.warning("cannot read %s: %s", IGNORE_FILE, exc)
        rules = IgnoreRules(patterns)
        for slot in self.slots.values():  # the same rules plan what these scans list
            slot.location.prune_folders(rules.prune)
        return rules

    def prefetch(self, slot: Slot) -> None:
        """Start ``slot``'s scan now; the next :meth:`scan_all` takes its result.

        It skips no folder: the ignore rules of the sync that takes it are not read yet (they
        are read by calls queued behind it on the same worker), and a listing with ignored
        files in it is safe where one missing files the rules keep would read as deletes.
        """
        if slot.ready:
            slot.location.prune_folders(None)
            slot.prefetched = slot.worker.start(partial(calls.scan, slot.location))

    def scan_all(self, ignore: IgnoreRules) -> dict[str, Listing]:
        """Scan every ready location, all at once on their workers.

        A location that does not answer in time is left out (it is caught up with a full sync
        once it answers, using the scan it was busy with). A listing may hold ignored paths:
        the caller leaves them out once for all locations.
        """
        listings: dict[str, Listing] = {}
        started: dict[str, Future[Listing]] = {}
        for slot in self.slots.values():
            if slot.available and slot.worker.stalled:
                slot.needs_full = True
        for slot in self.available():
            self.check_stop()
            if slot.late_listing is not None:
                listings[slot.key], slot.late_listing = slot.late_listing, None
                self.links.refresh(slot, ignore)
            elif slot.prefetched is not None:
                started[slot.key], slot.prefetched = slot.prefetched, None
            else:
                started[slot.key] = slot.worker.start(partial(calls.scan, slot.location))
        for key, future in started.items():
            slot = self.slots[key]
            try:
                late = partial(calls.keep_late_listing, slot)
                listings[key] = slot.worker.finish(future, self.io.deadline, late)
                self.links.refresh(slot, ignore)
            except LocationBusy as exc:
                slot.mark_stalled(exc)
                slot.needs_full = True
            except FileSyncError as exc:
                slot.fail(exc)
        return listings

    def stat(self, wanted: list[str], ignore: IgnoreRules) -> dict[str, Listing]:
        """Stat ``wanted`` in every ready location: per location, the paths that exist there.

        A location that does not answer in time, or cannot be read, is left out.
        """
        known: dict[str, dict[str, FileMeta | None]] = {}
        started: dict[str, Future[dict[str, FileMeta | None]]] = {}
        for slot in self.available():  # a stat that answered late still counts: no livelock
            known[slot.key] = {p: slot.late_stats.pop(p) for p in wanted if p in slot.late_stats}
            rest = [p for p in wanted if p not in known[slot.key] and self.names.holds(slot, p)]
            started[slot.key] = slot.worker.start(partial(calls.stat, slot.location, rest))
        listings: dict[str, Listing] = {}
        for key, future in started.items():
            slot = self.slots[key]
            late = partial(calls.keep_late_stats, slot)
            try:
                fresh: dict[str, FileMeta | None] = slot.worker.finish(
                    future, self.io.deadline, late
                )
                stats = known[key] | fresh
            except LocationBusy as exc:
                slot.mark_stalled(exc)
                continue
            except (FileSyncError, OSError) as exc:
                slot.fail(exc)
                continue
            self.links.refresh(slot, ignore)
            listings[key] = {p: m for p, m in stats.items() if m is not None}
        return listings

    def expand_tree(self, slot: Slot, prefix: str) -> set[str]:
        """Every path under folder ``prefix`` that ``slot`` knows of or holds now."""
        found = {p for p in slot.known if p.startswith(prefix + "/")}
        try:
            found.update(slot.run(partial(slot.location.scan, prefix), self.io.deadline))
        except LocationBusy:
            slot.needs_full = True
        except (FileSyncError, OSError) as exc:
            log.debug("scan of %s failed: %s", shown(prefix), exc)
        return found
