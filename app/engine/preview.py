"""What the initial sync would do, found without doing it (``filesync run --dry-run``).

The locations are opened read-only (nothing created, marked or cleaned up), read exactly as a
full sync reads them, and every path is planned by the same planner against the state index;
nothing is applied. The index is read through a private copy, so not even it changes.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import quote

from app.engine import calls
from app.engine.conflicts import conflict_name
from app.engine.index import INDEX_FILE, StateIndex
from app.engine.plan import Decision, Side
from app.engine.settings import EngineSettings
from app.engine.slot import Slot
from app.engine.sync import Syncer
from app.errors import FileSyncError
from app.locations.base import Location
from app.messages import shown

log = logging.getLogger(__name__)

COPY = "copy"
DELETE = "delete"
CONFLICT = "conflict copy"


@dataclass(frozen=True)
class Step:
    """One thing the sync would do to ``path``.

    ``copy``: the version in ``source`` goes to each of ``targets``; ``delete``: the file goes
    from each of ``targets``; ``conflict copy``: the version in ``source`` is kept beside the
    file as ``detail`` (then copied to the other locations, listed as copies).
    """

    action: str
    path: str
    source: str = ""
    targets: tuple[str, ...] = ()
    size: int = 0
    detail: str = ""


@dataclass
class Preview:
    """Everything the initial sync would do, and what it could not look at."""

    steps: list[Step] = field(default_factory=list)
    #: One line per location that could not be read (it would be retried, not synced).
    unavailable: list[str] = field(default_factory=list)
    #: One line per problem met while planning (held deletes, unreadable paths).
    problems: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        """How many files the steps of ``action`` touch (a copy to two places counts two)."""
        return sum(len(s.targets) or 1 for s in self.steps if s.action == action)

    @property
    def bytes_copied(self) -> int:
        """Bytes the copies would write, over all their targets."""
        return sum(s.size * len(s.targets) for s in self.steps if s.action == COPY)


def preview_sync(
    locations: Sequence[Location], index_file: Path, settings: EngineSettings
) -> Preview:
    """Plan a full sync of ``locations`` (opened read-only) against the index at ``index_file``.

    ``index_file`` need not exist (a first run). Nothing is written anywhere but a private
    temporary copy of the index, removed at the end.
    """
    preview = Preview()

    def record(action: str, path: str, location: str, detail: str) -> None:
        if action in ("held", "error"):
            preview.problems.append(detail)

    with _index_copy(index_file) as index:
        slots = {loc.key: Slot(loc) for loc in locations}
        try:
            syncer = Syncer(
                slots,
                index,
                record,
                debounce=settings.debounce,
                allow_mass_delete=settings.allow_mass_delete,
                ignore=settings.ignore,
            )
            for slot in slots.values():
                _open(slot, index, preview)
            listings, paths = syncer.read_all()
            for path in paths:
                sides = syncer.sides.of(path, listings)
                try:
                    decision = syncer.sides.decide(path, sides)
                except FileSyncError as exc:
                    preview.problems.append(f"{shown(path)}: cannot compare: {exc}")
                    continue
                preview.steps += _steps(path, decision, sides, slots)
        finally:
            for slot in slots.values():
                slot.worker.shutdown()
                with contextlib.suppress(Exception):
                    slot.location.close()
    return preview


def _open(slot: Slot, index: StateIndex, preview: Preview) -> None:
    """Open (read-only) and check one location, as the engine does before its first sync."""
    loc = slot.location
    slot.known = index.load(loc.key)
    slot.stale = index.load_stale(loc.key)
    opening = partial(calls.open_and_watch, loc, index.has_history(loc.key), None, None, 1.0)
    try:
        slot.run(opening, None)
    except FileSyncError as exc:
        slot.fail(exc)
        preview.unavailable.append(str(exc) if loc.name in str(exc) else f"{loc.name}: {exc}")


def _steps(
    path: str, decision: Decision, sides: dict[str, Side], slots: dict[str, Slot]
) -> list[Step]:
    """The steps of one decision, in the order the engine applies them."""
    steps = []
    name = {key: slots[key].location.name for key in slots}
    for key in decision.conflicts:
        current = sides[key].current
        assert current is not None
        copy = conflict_name(path, current.mtime_ns, slots[key].location.label)
        others = tuple(name[k] for k in sides if k != key)
        steps.append(Step(CONFLICT, path, name[key], (), current.size, copy))
        steps.append(Step(COPY, copy, name[key], others, current.size))
    if decision.source is not None and decision.copy_to:
        current = sides[decision.source].current
        size = current.size if current is not None else 0
        targets = tuple(name[k] for k in decision.copy_to)
        steps.append(Step(COPY, path, name[decision.source], targets, size))
    if decision.delete_in:
        steps.append(Step(DELETE, path, "", tuple(name[k] for k in decision.delete_in)))
    return steps


@contextlib.contextmanager
def _index_copy(index_file: Path) -> Iterator[StateIndex]:
    """A private copy of the state index (empty when there is none yet), removed afterwards.

    The original is opened read-only (``immutable`` when no write-ahead log is pending, so
    SQLite does not even create its shared-memory file beside it).
    """
    with tempfile.TemporaryDirectory(prefix="filesync-dry-run-") as tmp:
        copy = Path(tmp) / INDEX_FILE
        if index_file.is_file():
            wal = index_file.with_name(index_file.name + "-wal")
            mode = "ro" if wal.exists() else "ro&immutable=1"
            source = sqlite3.connect(f"file:{quote(str(index_file))}?mode={mode}", uri=True)
            try:
                target = sqlite3.connect(copy)
                try:
                    source.backup(target)
                finally:
                    target.close()
            except sqlite3.Error as exc:
                raise FileSyncError(f"cannot read the state index {index_file}: {exc}") from None
            finally:
                source.close()
        index = StateIndex(copy)
        try:
            yield index
        finally:
            index.close()
