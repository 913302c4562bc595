"""Copies handed to a location in groups, so it can make them durable together (issue 11).

A location that declares ``batched_writes`` (a folder) gets its copies through
:meth:`~app.locations.base.Location.write_many`: the applier adds each planned copy here
instead of writing it at once, and the syncer sends a group to the location's worker once it
is big enough, and at the end of each chunk of paths, before its rows are committed. While one
group is being written, the engine thread plans the next one (at most one group per location
is under way, so the worker's queue stays short and its deadline meaningful).

A copy's row is recorded only from the outcome the location returned for it, once the whole
group is on disk, so the index never holds a copy that is not there. A copy that failed comes
back as a :class:`CopyFailed` for the syncer, which treats it exactly as a copy that failed on
its own (planned again, retried later, or the location marked behind).

While the engine waits for every answer (an initial or ``--once`` sync), a group that another
group of the same location follows is written with ``write_many_unsettled``: its renames become
durable with the next group's first durability pass, so a folder syncs once per group instead
of twice. Its outcomes wait here (unsettled) and are recorded only once that next group came
back, or once ``settle_writes`` did for the last group; if either failed, the waiting copies
fail too, and nothing was recorded for them. That holds across the syncer's chunks of paths:
a chunk's last group of new files waits for the next chunk's first pass, and is recorded (and
committed) with that chunk. A group that replaced files settles before its chunk's commit,
since that commit holds its source's new rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial

from app.engine.slot import Slot
from app.engine.workers import SlotIo
from app.errors import FileSyncError, LocationBusy
from app.locations.base import FileMeta, GroupStopped, Location, WriteJob, WriteOutcome
from app.logsetup import held_lines

#: A group is sent once it holds this many files...
GROUP_FILES = 256
#: ... this many for a location declaring ``large_groups`` (a folder) while the engine waits
#: for every answer (an initial or ``--once`` sync): nothing waits for a single file's outcome,
#: and each group starts and ends with copies that overlap no durability pass (a folder
#: overlaps the passes within a group, part by part). 10,000 new files into two folders on a
#: journaled ext4, 10 rounds interleaved: 1.28x rsync with groups of 1,024 and the engine's
#: chunks of 2,000 paths, 1.17x with 4,096 (16 MiB, below, cuts them at ~3,700 here) and
#: chunks of 10,000...
GROUP_FILES_WAITED = 4096
#: ... or this many bytes (a big file goes alone, as before)...
GROUP_BYTES = 16 << 20
#: ... or this many files once the location's previous group is written: its worker would
#: otherwise wait for the engine to plan a whole group (at the start of every chunk of paths).
GROUP_FILES_IDLE = 32


@dataclass
class PendingCopy:
    """One planned copy of ``path`` from ``source`` (the version ``winner``)."""

    source: Slot
    path: str
    winner: FileMeta
    job: WriteJob
    #: True once opening or reading the source failed (that concerns every target).
    source_failed: Callable[[], bool]
    #: Called once the copy landed in time: the location caught up on ``path`` (the syncer
    #: sets it when the decision informed it).
    caught_up: Callable[[], None] | None = None


@dataclass(frozen=True)
class CopyFailed:
    """A copy of ``path`` into the location ``key`` that did not land, and why."""

    key: str
    path: str
    error: FileSyncError | OSError
    source_failed: bool


def _write_group(target: Location, copies: list[PendingCopy], settle: bool) -> list[WriteOutcome]:
    """Write a group on the target's worker, the sources that read in groups reading ahead.

    A source declaring ``batched_reads`` (a server) is told every file of the group it is to
    give, so it can fetch them together instead of one round trip after another. Without
    ``settle`` the group's durability may wait for the next group (see the module).
    """
    ahead: dict[int, tuple[Location, list[tuple[str, FileMeta]]]] = {}
    for copy in copies:
        source = copy.source.location
        if source.capabilities.batched_reads:
            ahead.setdefault(id(source), (source, []))[1].append((copy.path, copy.winner))
    parallel = all(c.source.location.capabilities.parallel_reads for c in copies)
    with contextlib.ExitStack() as stack:
        for source, wanted in ahead.values():
            stack.enter_context(source.read_ahead(wanted))
        jobs = [c.job for c in copies]
        if settle:
            return target.write_many(jobs, parallel_reads=parallel)
        return target.write_many_unsettled(jobs, parallel_reads=parallel)


@dataclass
class _Group:
    copies: list[PendingCopy] = field(default_factory=list)
    size: int = 0
    #: The location declares ``large_groups`` (see :data:`GROUP_FILES_WAITED`) and no source
    #: of the group reads it ahead (an SFTP server would open every file of it at once).
    large: bool = False


#: Records the copies of a group that landed: the target slot, and for each copy its source
#: slot, its path and the meta the target reported.
Copied = Callable[[Slot, list[tuple[Slot, str, FileMeta]]], None]
#: Records a copy that landed after its deadline: the same with the winner it copied.
LateCopied = Callable[[Slot, Slot, str, FileMeta, FileMeta], None]


class _Sent:
    """A group under way: its slot, its future, its copies, and whether it settles (see module).

    ``ended`` is set by the worker as the group ends: whether the location is free again is
    asked once a path while a group waits, and the future's own ``done()`` takes its lock
    (that polling was a tenth of an initial sync's engine thread).
    """

    __slots__ = ("copies", "ended", "future", "settles", "slot")

    def __init__(
        self,
        slot: Slot,
        future: Future[list[WriteOutcome]],
        copies: list[PendingCopy],
        settles: bool,
    ) -> None:
        self.slot, self.future, self.copies, self.settles = slot, future, copies, settles
        self.ended = False
        future.add_done_callback(self._end)

    def _end(self, _: Future[list[WriteOutcome]]) -> None:
        self.ended = True


#: A group written whose renames wait for a later durability pass: its copies and outcomes.
_Unsettled = tuple[Slot, list[PendingCopy], list[FileMeta]]


class CopyGroups:
    """The copies waiting to be sent, the group under way and the group written but not yet
    durable, for each location."""

    def __init__(self, io: SlotIo, copied: Copied, late_copied: LateCopied) -> None:
        self.io = io
        self._copied = copied
        self._late_copied = late_copied
        self._waiting: dict[str, _Group] = {}
        self._sent: dict[str, _Sent] = {}
        self._unsettled: dict[str, _Unsettled] = {}

    def add(
        self,
        slot: Slot,
        source: Slot,
        path: str,
        winner: FileMeta,
        *,
        job: WriteJob,
        source_failed: Callable[[], bool],
    ) -> PendingCopy:
        """Queue a copy of ``path`` for ``slot`` (see :class:`PendingCopy`); it is written when
        its group is sent. Built here, so that the applier need not load this module until it
        has a copy for a group (an import statement per copy cost 3 % of an initial sync)."""
        copy = PendingCopy(source, path, winner, job, source_failed)
        group = self._waiting.get(slot.key)
        if group is None:
            large = slot.location.capabilities.large_groups
            group = self._waiting[slot.key] = _Group(large=large)
        if copy.source.location.capabilities.batched_reads:
            group.large = False  # a server reads a group ahead, a file handle each
        group.copies.append(copy)
        group.size += winner.size
        return copy

    def room(self, slot: Slot, source: Slot) -> tuple[int, int]:
        """How many more files, and bytes, ``slot``'s waiting group takes from ``source``
        before it is full (:meth:`_ready`), for the engine adding many copies at once."""
        group = self._waiting.get(slot.key)
        large = slot.location.capabilities.large_groups if group is None else group.large
        if source.location.capabilities.batched_reads:
            large = False
        most = GROUP_FILES_WAITED if self.io.deadline is None and large else GROUP_FILES
        if group is None:
            return most, GROUP_BYTES
        return most - len(group.copies), GROUP_BYTES - group.size

    @property
    def due(self) -> bool:
        """True when some location's waiting group should be sent now."""
        return any(self._ready(key, group) for key, group in self._waiting.items())

    def send_due(self, slots: dict[str, Slot]) -> list[CopyFailed]:
        """Send every group that is due (after the previous one of its location)."""
        failed: list[CopyFailed] = []
        for key, group in list(self._waiting.items()):
            if self._ready(key, group):
                failed += self._send(slots[key], last=False)
        return failed

    def _ready(self, key: str, group: _Group) -> bool:
        """Full, or big enough to be worth a durability pass while the location is idle."""
        most = GROUP_FILES
        if self.io.deadline is None and group.large:
            most = GROUP_FILES_WAITED
        if len(group.copies) >= most or group.size >= GROUP_BYTES:
            return True
        if len(group.copies) < GROUP_FILES_IDLE:
            return False
        sent = self._sent.get(key)
        return sent is None or sent.ended

    def finish(self, slots: dict[str, Slot], *, settle: bool = True) -> list[CopyFailed]:
        """Send what waits and wait for every group: all copies so far have an outcome, and
        (with ``settle``) every copy that landed is durable and recorded.

        Without ``settle`` (more groups follow: the engine's next chunk of paths), a
        location's last group of new files is left unsettled instead, unrecorded, for the next
        group's first pass to make durable: settling it on its own cost every chunk another
        pass per location, and its wait. A group that replaced files settles all the same.
        """
        failed: list[CopyFailed] = []
        for key in list(self._waiting):
            failed += self._send(slots[key], last=settle)
        for key in list(self._sent):
            failed += self._collect(key)
        for key, (_, copies, _) in list(self._unsettled.items()):
            # A replaced file's new row must not be committed before its rename is durable:
            # the source's row is, and a rename lost at a power cut would leave both rows
            # agreeing with both files, the target's old version never updated.
            if settle or any(copy.job.expected is not None for copy in copies):
                failed += self._settle(key)
        return failed

    @property
    def unsettled(self) -> bool:
        """True while some copies that landed wait for a durability pass to be recorded."""
        return bool(self._unsettled)

    def abandon(self) -> None:
        """A stop or an unexpected error: forget what waits; record what already landed."""
        self._waiting.clear()
        for key in list(self._sent):
            with contextlib.suppress(Exception):  # the stop itself, raised by a copy
                self._collect(key)
        for key in list(self._unsettled):
            with contextlib.suppress(Exception):
                self._settle(key)

    def _send(self, slot: Slot, *, last: bool) -> list[CopyFailed]:
        failed = self._collect(slot.key)
        group = self._waiting.pop(slot.key, None)
        if group is None or not group.copies:
            return failed
        # Only while every answer is waited for: a group that misses its deadline is recorded
        # when it ends (``_late``), with no later pass sure to follow it.
        settle = last or self.io.deadline is not None
        write = partial(_write_group, slot.location, group.copies, settle)
        try:
            future = slot.worker.start(write)
        except LocationBusy as exc:
            slot.mark_stalled(exc)
            failed += self._lose_unsettled(slot.key, exc)
            return failed + [CopyFailed(slot.key, c.path, exc, False) for c in group.copies]
        self._sent[slot.key] = _Sent(slot, future, group.copies, settle)
        return failed

    def _collect(self, key: str) -> list[CopyFailed]:
        """Wait for ``key``'s group under way (at most the deadline) and record its outcomes,
        and those of the earlier group its durability pass covered."""
        sent = self._sent.pop(key, None)
        if sent is None:
            return []
        slot, future, copies, settles = sent.slot, sent.future, sent.copies, sent.settles
        try:
            late = partial(self._late, slot, copies, settles)
            outcomes = slot.worker.finish(future, self.io.deadline, late)
        except LocationBusy as exc:
            slot.mark_stalled(exc)
            lost = self._lose_unsettled(key, exc)
            return lost + [CopyFailed(key, c.path, exc, False) for c in copies]
        except GroupStopped as partway:  # stopped after some parts landed
            failed = self._stopped_partway(slot, copies, partway.outcomes)
            stop = partway.stop
            if not isinstance(stop, FileSyncError | OSError):
                raise stop from None
            rest = copies[len(partway.outcomes) :]
            return failed + [CopyFailed(key, c.path, stop, c.source_failed()) for c in rest]
        except (FileSyncError, OSError) as exc:  # the whole group failed
            lost = self._lose_unsettled(key, exc)
            return lost + [CopyFailed(key, c.path, exc, c.source_failed()) for c in copies]
        earlier = self._unsettled.pop(key, None)
        if earlier is not None:  # this group's first pass made it durable
            self._record(*earlier)
        failed = []
        landed: list[PendingCopy] = []
        metas: list[FileMeta] = []
        for copy, outcome in zip(copies, outcomes, strict=True):
            if isinstance(outcome, FileMeta):
                landed.append(copy)
                metas.append(outcome)
            else:
                failed.append(CopyFailed(key, copy.path, outcome, copy.source_failed()))
        if settles:
            self._record(slot, landed, metas)
        elif landed:
            self._unsettled[key] = (slot, landed, metas)
        return failed

    def _stopped_partway(
        self, slot: Slot, copies: list[PendingCopy], outcomes: list[WriteOutcome]
    ) -> list[CopyFailed]:
        """A group ended after its first copies were written (``outcomes``): the pass that let
        them land made the group before durable (it is recorded); they wait, unsettled, for the
        pass a stop makes (:meth:`abandon`) or the next group's. Returns those that failed."""
        earlier = self._unsettled.pop(slot.key, None)
        if earlier is not None:
            self._record(*earlier)
        landed: list[PendingCopy] = []
        metas: list[FileMeta] = []
        failed = []
        for copy, outcome in zip(copies, outcomes, strict=False):
            if isinstance(outcome, FileMeta):
                landed.append(copy)
                metas.append(outcome)
            else:
                failed.append(CopyFailed(slot.key, copy.path, outcome, copy.source_failed()))
        if landed:
            self._unsettled[slot.key] = (slot, landed, metas)
        return failed

    def _settle(self, key: str) -> list[CopyFailed]:
        """Make ``key``'s unsettled group durable on its own (no group follows); record it."""
        slot, copies, metas = self._unsettled[key]
        try:
            slot.run(slot.location.settle_writes, self.io.deadline)
        except LocationBusy as exc:
            slot.mark_stalled(exc)
            return self._lose_unsettled(key, exc)
        except (FileSyncError, OSError) as exc:
            return self._lose_unsettled(key, exc)
        del self._unsettled[key]
        self._record(slot, copies, metas)
        return []

    def _lose_unsettled(self, key: str, exc: FileSyncError | OSError) -> list[CopyFailed]:
        """The pass that was to make ``key``'s unsettled group durable failed or did not
        answer: its copies are on their names, but unrecorded they are planned again."""
        unsettled = self._unsettled.pop(key, None)
        if unsettled is None:
            return []
        return [CopyFailed(key, c.path, exc, False) for c in unsettled[1]]

    def _record(self, slot: Slot, copies: list[PendingCopy], metas: list[FileMeta]) -> None:
        """Record the copies that landed, together (a group's rows and log lines at once)."""
        with held_lines():
            self._copied(
                slot, [(c.source, c.path, meta) for c, meta in zip(copies, metas, strict=True)]
            )
            for copy in copies:
                if copy.caught_up is not None:
                    copy.caught_up()

    def _late(
        self,
        slot: Slot,
        copies: list[PendingCopy],
        settles: bool,
        future: Future[list[WriteOutcome]],
    ) -> None:
        """A group that missed its deadline ended: record what landed, as a timely one would
        (one that did not settle stays unrecorded: nothing made it durable)."""
        if future.exception() is not None or not settles:
            return
        for copy, outcome in zip(copies, future.result(), strict=True):
            if isinstance(outcome, FileMeta):
                self._late_copied(slot, copy.source, copy.path, copy.winner, outcome)
