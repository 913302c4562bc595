"""Pure decisions: given what each location holds for one path, what must happen.

No I/O here, so every rule is tested with hand-built inputs (``tests/test_plan.py``) and the
property test can run thousands of examples against in-memory locations.

For each location a path is in one of five states relative to the index (what that location
held when last in sync): unchanged, absent (never there), created (no history), edited, or
deleted. The rules, in the order they apply:

1. A changed version (created or edited) beats an unchanged one and beats a delete
   ("an edit beats a concurrent delete").
2. Among competing versions the newest mtime wins (latest-write-wins), compared within the
   coarser precision of the two locations; ties break on size, then location key, so every
   run decides the same way. A version with no history (created) also competes with the
   unchanged ones, so an old copy in a newly added location never overwrites newer files.
3. A competing version that loses and differs in content is kept as a conflict copy.
4. With no changed version, a delete in any location propagates to all.

A file deleted while the app was off is decided by the same rules: the index still holds its
row for that location and the location no longer holds it, so that side is "deleted" (rule 4,
unless another location edited it meanwhile, rule 1).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

from app.locations.base import FileMeta


class SideState(enum.Enum):
    """How one location's copy of a path relates to the index."""

    UNCHANGED = "unchanged"
    CREATED = "created"
    EDITED = "edited"
    DELETED = "deleted"


class Side:
    """One location's view of a path: what it holds now and what the index says it held.

    Treated as immutable, not made so: a sync builds one per location for every path, and a
    slotted class with its own ``__init__`` is the cheapest to build (an enforced immutable
    one sets each field through ``object.__setattr__``, five times slower). Not a dataclass:
    generating a dataclass's methods, with ``dataclasses`` and ``inspect`` to load, cost
    every start a few milliseconds.
    """

    __slots__ = ("comparable", "current", "indexed", "key", "precision_ns")

    key: str
    current: FileMeta | None
    indexed: FileMeta | None
    precision_ns: int
    comparable: bool

    def __init__(
        self,
        key: str,
        current: FileMeta | None,
        indexed: FileMeta | None,
        precision_ns: int = 1,
        comparable: bool = True,
    ) -> None:
        self.key = key
        self.current = current
        self.indexed = indexed
        self.precision_ns = precision_ns
        self.comparable = comparable

    @property
    def state(self) -> SideState:
        """The state of this copy relative to the index.

        A tag of 0 on either side means "unknown" (a write whose result the location could not
        tag cheaply), so then size and mtime alone decide.
        """
        if self.current == self.indexed or (
            self.current is not None
            and self.current.same_version(self.indexed)
            and 0 in (self.current.tag, self.indexed.tag)  # type: ignore[union-attr]
        ):
            return SideState.UNCHANGED
        if self.current is None:
            return SideState.DELETED
        if self.indexed is None:
            return SideState.CREATED
        return SideState.EDITED


class Decision:
    """What to do for one path.

    ``source`` is the location whose version wins (None: the path is deleted everywhere).
    ``conflicts`` are locations whose own version must first be kept as a conflict copy,
    ``copy_to`` receive the winner, ``delete_in`` lose the file, ``record`` already hold the
    winning version (their current meta goes to the index), and ``forget`` drop their row.
    Treated as immutable (see :class:`Side`); equal when every part is, and so unhashable.
    """

    __slots__ = ("conflicts", "copy_to", "delete_in", "forget", "record", "source")

    source: str | None
    copy_to: tuple[str, ...]
    delete_in: tuple[str, ...]
    conflicts: tuple[str, ...]
    record: tuple[str, ...]
    forget: tuple[str, ...]

    def __init__(  # noqa: PLR0917 - its fields in order, as callers pass them
        self,
        source: str | None = None,
        copy_to: tuple[str, ...] = (),
        delete_in: tuple[str, ...] = (),
        conflicts: tuple[str, ...] = (),
        record: tuple[str, ...] = (),
        forget: tuple[str, ...] = (),
    ) -> None:
        self.source = source
        self.copy_to = copy_to
        self.delete_in = delete_in
        self.conflicts = conflicts
        self.record = record
        self.forget = forget

    def _parts(self) -> tuple[object, ...]:
        return (
            self.source,
            self.copy_to,
            self.delete_in,
            self.conflicts,
            self.record,
            self.forget,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return self._parts() == other._parts()

    __hash__ = None  # type: ignore[assignment]  # equal by value, yet not immutable

    def __repr__(self) -> str:
        names = ("source", "copy_to", "delete_in", "conflicts", "record", "forget")
        parts = ", ".join(f"{n}={v!r}" for n, v in zip(names, self._parts(), strict=True))
        return f"Decision({parts})"

    @property
    def is_noop(self) -> bool:
        """True when nothing is written, deleted or recorded."""
        return not (self.copy_to or self.delete_in or self.conflicts or self.record or self.forget)


SameContent = Callable[[str, str], bool]


def same_time(a: Side, b: Side) -> bool | None:
    """Whether two current mtimes are the same instant; None when they cannot be compared."""
    assert a.current is not None and b.current is not None
    if not (a.comparable and b.comparable):
        return None
    tolerance = max(a.precision_ns, b.precision_ns, 1)
    return abs(a.current.mtime_ns - b.current.mtime_ns) < tolerance


def same_version(a: Side, b: Side) -> bool | None:
    """True/False when size and mtime decide; None when only the content can tell."""
    assert a.current is not None and b.current is not None
    if a.current.size != b.current.size:
        return False
    return same_time(a, b)


def _needs_bytes(side: Side, winner: Side, verdict: bool | None, contender: bool) -> bool:
    """Whether only the bytes can tell if ``side`` holds the winner's version.

    Size and time cannot tell when the times are not comparable; when a changed version
    might still be identical (not a conflict then); when one side changed although both metas
    match (a same-size edit with its mtime restored); and when two changed versions match only
    within a coarse clock (two saves within ZIP's 2 s or FTP's 1 s).
    """
    if verdict is None:
        return True
    if not verdict:
        return contender
    assert side.current is not None and winner.current is not None
    one_changed = (side.state is SideState.UNCHANGED) != (winner.state is SideState.UNCHANGED)
    exact = side.current.mtime_ns == winner.current.mtime_ns
    return one_changed or (contender and not exact)


def _newest(pool: Sequence[Side]) -> Side:
    best = pool[0]
    for side in pool[1:]:
        if _beats(side, best):
            best = side
    return best


def _beats(a: Side, b: Side) -> bool:
    assert a.current is not None and b.current is not None
    if same_time(a, b) is not True and a.current.mtime_ns != b.current.mtime_ns:
        return a.current.mtime_ns > b.current.mtime_ns
    if a.current.size != b.current.size:
        return a.current.size > b.current.size
    return a.key < b.key


def plan_path(
    sides: Sequence[Side],
    same_content: SameContent | None = None,
    stale: frozenset[str] = frozenset(),
) -> Decision:
    """Decide what happens to one path, given every available location's view of it.

    ``same_content(a, b)`` is asked (it may read both files) only when two differing metas
    might still hold the same bytes; without it such versions are treated as different.

    ``stale`` names locations that were unavailable when the path last changed elsewhere:
    their index row is older than the others'. One that did not change since is simply behind
    and receives the others' outcome; one that changed too made a concurrent change, so every
    other present version competes with it (the loser becomes a conflict copy).
    """
    stale_keys = {s.key for s in sides} & stale
    if stale_keys:
        return _plan_with_stale(sides, same_content, stale_keys)
    return _plan(sides, same_content)


def _plan_with_stale(
    sides: Sequence[Side], same_content: SameContent | None, stale: set[str]
) -> Decision:
    behind = [s for s in sides if s.key in stale and s.state is SideState.UNCHANGED]
    others = [s for s in sides if s not in behind]
    if not others:
        return Decision()
    if any(s.key in stale for s in others):  # a stale location changed: concurrent changes
        others = [
            Side(s.key, s.current, None, s.precision_ns, s.comparable)
            if s.key not in stale and s.state is SideState.UNCHANGED and s.current is not None
            else s
            for s in others
        ]
    decision = _plan(others, same_content)
    if not behind:
        return decision
    present = [s for s in others if s.current is not None]
    if decision.source is None and (decision.delete_in or not present):
        return Decision(
            delete_in=decision.delete_in + tuple(s.key for s in behind if s.current),
            forget=decision.forget + tuple(s.key for s in behind if s.indexed),
        )
    source = decision.source or _newest(present).key
    winner = next(s for s in others if s.key == source)
    copy_to, record = list(decision.copy_to), list(decision.record)
    for side in behind:
        if side.current is not None and same_version(side, winner):
            record.append(side.key)
        else:
            copy_to.append(side.key)
    return Decision(
        source=source,
        copy_to=tuple(copy_to),
        delete_in=decision.delete_in,
        conflicts=decision.conflicts,
        record=tuple(record),
        forget=decision.forget,
    )


def _plan(sides: Sequence[Side], same_content: SameContent | None) -> Decision:
    present = [s for s in sides if s.current is not None]
    contenders = [s for s in present if s.state in (SideState.CREATED, SideState.EDITED)]

    if not contenders:
        if any(s.state is SideState.DELETED for s in sides):
            return Decision(
                delete_in=tuple(s.key for s in present),
                forget=tuple(s.key for s in sides if s.indexed is not None),
            )
        absent = tuple(s.key for s in sides if s.current is None)
        if not present or not absent:
            return Decision()
        # Nothing changed, but a location lacks the file (it was added later): fill it in.
        return Decision(source=_newest(present).key, copy_to=absent)
    pool: list[Side] = contenders
    if any(s.state is SideState.CREATED for s in contenders):
        pool = present

    winner = _newest(pool)
    copy_to: list[str] = []
    conflicts: list[str] = []
    record: list[str] = []
    if winner.state is not SideState.UNCHANGED:
        record.append(winner.key)
    for side in sides:
        if side is winner:
            continue
        if side.current is None:
            copy_to.append(side.key)
            continue
        contender = side in contenders
        verdict = same_version(side, winner)
        if _needs_bytes(side, winner, verdict, contender):
            verdict = (
                side.current.size == winner.current.size  # type: ignore[union-attr]
                and same_content is not None
                and same_content(side.key, winner.key)
            )
        if verdict:
            if side.state is not SideState.UNCHANGED:
                record.append(side.key)
            continue
        if contender:
            conflicts.append(side.key)
        copy_to.append(side.key)
    return Decision(
        source=winner.key,
        copy_to=tuple(copy_to),
        conflicts=tuple(conflicts),
        record=tuple(record),
    )
