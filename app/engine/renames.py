"""Propagating a rename as a rename, so a moved file or folder is not copied again.

Only where it is safe: the other location must be able to rename, must hold the file as the
index last saw it, and must be able to hold both names. Wherever that fails the planner copies
and deletes instead, so a rename never loses a file.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from functools import partial

from app.engine import calls
from app.engine.apply import Applier
from app.engine.ignore import IgnoreRules
from app.engine.links import HeldLinks
from app.engine.namegate import NameGate
from app.engine.reading import Reader
from app.engine.slot import Slot
from app.engine.status import Recorder
from app.errors import FileSyncError
from app.locations.base import FileMeta
from app.messages import shown

log = logging.getLogger(__name__)


class Renamer:
    """Renames in the other locations what one location's watcher saw renamed."""

    def __init__(
        self,
        reader: Reader,
        applier: Applier,
        links: HeldLinks,
        names: NameGate,
        record: Recorder,
    ) -> None:
        self.reader = reader
        self.applier = applier
        self.links = links
        self.names = names
        self.record = record

    def propagate(self, origin: Slot, src: str, dst: str, ignore: IgnoreRules) -> None:
        """Rename in the other locations instead of re-copying, where that is safe."""
        if ignore.ignored(src) or ignore.ignored(dst):
            return
        old = origin.known.get(src)
        deadline = self.reader.io.deadline
        try:
            moved = origin.run(partial(calls.moved_here, origin.location, src, dst, old), deadline)
            if moved is None:
                return  # not a plain rename of a synced file: the planner handles it
            everywhere = True
            for slot in self.reader.available():
                if slot is origin:
                    continue
                indexed = slot.known.get(src)
                if (
                    not self.names.holds(slot, src)
                    or not self.names.holds(slot, dst)
                    or not slot.location.capabilities.can_rename
                    or indexed is None
                    or self.links.holds(slot.key, src)
                    or self.links.holds(slot.key, dst)
                ):
                    everywhere = False  # the planner copies and deletes there instead
                    continue
                rename = partial(calls.rename_if_unchanged, slot.location, src, dst, indexed)
                try:
                    meta = slot.run(rename, deadline, partial(self._late_rename, slot, src, dst))
                except (FileSyncError, OSError) as exc:
                    log.info(
                        "rename %s -> %s not done in %s (%s)", shown(src), shown(dst), slot.key, exc
                    )
                    meta = None
                if meta is None:
                    everywhere = False
                    continue
                self._renamed(slot, src, dst, meta)
            if everywhere:
                self._move_row(origin, src, dst, moved)
        except (FileSyncError, OSError) as exc:
            log.info(
                "rename %s -> %s not propagated (%s); copying instead", shown(src), shown(dst), exc
            )

    def propagate_tree(self, origin: Slot, src: str, dst: str, ignore: IgnoreRules) -> set[str]:
        """A folder moved: rename each file it held in the other locations; return the paths
        to plan (both trees), so whatever could not be renamed is copied and deleted."""
        moved = sorted(p for p in origin.known if p.startswith(src + "/"))
        for old in moved:
            self.propagate(origin, old, dst + old[len(src) :], ignore)
        return set(moved) | self.reader.expand_tree(origin, dst)

    def _renamed(self, slot: Slot, src: str, dst: str, meta: FileMeta) -> None:
        slot.renames += 1
        self._move_row(slot, src, dst, meta)
        self.record("renamed", dst, slot.location.name, f"from {shown(src)}")

    def _late_rename(self, slot: Slot, src: str, dst: str, future: Future[FileMeta | None]) -> None:
        """A rename that missed its deadline ended: record it if it happened."""
        meta = future.result() if future.exception() is None else None
        if meta is not None:
            self._renamed(slot, src, dst, meta)

    def _move_row(self, slot: Slot, src: str, dst: str, meta: FileMeta) -> None:
        self.applier.drop(slot, src)
        self.applier.put(slot, dst, meta)
