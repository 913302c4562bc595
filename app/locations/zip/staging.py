"""Staging one archive rewrite: staged operations in, the new archive's members out.

Pure apart from reading local headers of renamed members, so the rules are easy to test:
members keep their order, a replaced member keeps its place, new members go at the end,
earlier duplicates of a name disappear (the last one counts), unsafe and internal names and
directory entries are kept untouched, except directory entries a delete left empty.
:class:`StagedOps` holds a batch's operations until then, with what the engine expected each
path to hold, so a member another program changed meanwhile keeps that program's version.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from app.locations.base import FileMeta
from app.locations.names import parent_folders
from app.locations.zip.format import (
    DEFAULT_EXT_ATTR,
    DEFLATED,
    EXTRA_UNICODE_PATH,
    FLAG_UTF8,
    MADE_BY_UNIX,
    Directory,
    Entry,
    dos_datetime,
    encode_name,
    entry_mtime_ns,
    local_header,
    strip_extra,
    unix_time_extra,
)
from app.locations.zip.parse import read_local_header
from app.locations.zip.stream import Blob, Item


@dataclass(frozen=True, slots=True)
class Staged:
    """New content for a name; ``entry.offset`` is where its deflated bytes start."""

    entry: Entry


@dataclass(frozen=True, slots=True)
class Moved:
    """An existing member (``src``) that will appear under a new name; ``entry`` as renamed."""

    src: str
    entry: Entry


Op = Staged | Moved | None


def meta_of(entry: Entry) -> FileMeta:
    """The meta a scan reports for ``entry``; its CRC-32 tags the content."""
    return FileMeta(entry.usize, entry.mtime_ns, entry.crc)


def renamed(entry: Entry, name: str) -> Entry:
    """``entry`` under a new name; the Unicode-path field would name the old one, so it goes."""
    raw, utf8 = encode_name(name)
    flags = (entry.flags & ~FLAG_UTF8) | utf8
    extra = strip_extra(entry.extra, EXTRA_UNICODE_PATH)
    return entry._replace(name=name, raw_name=raw, flags=flags, extra=extra)


def new_entry(name: str, blob: Blob, mtime_ns: int, template: Entry | None) -> Entry:
    """The entry a new member will have; its mtime is decoded exactly as a scan would."""
    raw, flags = encode_name(name)
    date, dtime = dos_datetime(mtime_ns)
    secs = mtime_ns // 1_000_000_000
    extra = unix_time_extra(secs) if 0 <= secs < 2**32 else b""
    return Entry(
        name=name,
        raw_name=raw,
        made_by=template.made_by if template else MADE_BY_UNIX | 20,
        needed=20,
        flags=flags,
        method=DEFLATED,
        dos_time=dtime,
        dos_date=date,
        crc=blob.crc,
        csize=blob.csize,
        usize=blob.usize,
        int_attr=0,
        ext_attr=template.ext_attr if template else DEFAULT_EXT_ATTR,
        offset=blob.offset,
        extra=extra,
        comment=b"",
        mtime_ns=entry_mtime_ns(date, dtime, extra),
        span_end=blob.offset + blob.csize,
    )


def _ancestors(path: str) -> list[str]:
    """The directory entries (``"a/"``) that hold ``path``."""
    return [f"{d}/" for d in parent_folders(path.rstrip("/"))]


def _emptied_dirs(final: Iterable[str], dirs: set[str], removed: set[str]) -> set[str]:
    """Directory entries that only held removed files: a folder drops those, and so do we."""
    candidates = {d for p in removed for d in _ancestors(p)} & dirs
    if not candidates:
        return set()
    occupied = {d for p in final for d in _ancestors(p)}
    for d in dirs - candidates:
        occupied.update(_ancestors(d))
    drop = set()
    for d in sorted(candidates, key=lambda d: -d.count("/")):
        if d in occupied:
            occupied.update(_ancestors(d))
        else:
            drop.add(d)
    return drop


def rewritten_members(
    directory: Directory,
    by_name: Mapping[str, Entry],
    ops: Mapping[str, Op],
    archive_fd: int,
    stage_fd: int | None,
) -> list[Item] | None:
    """The members of the new archive, in order, or None if nothing would change.

    ``by_name`` maps each listed name to its (last) entry in ``directory``; ``ops`` are the
    staged operations still valid against ``directory``.
    """
    ops = dict(ops)
    changed = False
    removed = {p for p, op in ops.items() if op is None}
    items: list[Item] = []

    def item_for(path: str, op: Op) -> Item | None:
        if isinstance(op, Staged):
            assert stage_fd is not None
            entry = op.entry
            return Item(entry, stage_fd, entry.offset, local_header(entry, entry.extra))
        if isinstance(op, Moved):
            source = by_name[op.src]
            local_extra, data_start = read_local_header(archive_fd, source)
            entry = renamed(source, path)
            header = local_header(entry, strip_extra(local_extra, EXTRA_UNICODE_PATH))
            return Item(entry, archive_fd, data_start, header)
        return None

    for entry in directory.entries:
        if by_name.get(entry.name) is not entry:
            if entry.name in by_name:
                changed = True  # an earlier duplicate: the last one counts
                continue
            items.append(Item(entry, archive_fd))
        elif entry.name in ops:
            changed = True
            item = item_for(entry.name, ops.pop(entry.name))
            if item is not None:
                items.append(item)
        else:
            items.append(Item(entry, archive_fd))
    for path, op in ops.items():
        item = item_for(path, op)
        if item is not None:
            changed = True
            items.append(item)
    dirs = {e.name for e in directory.entries if e.is_dir}
    drop = _emptied_dirs((i.entry.name for i in items if not i.entry.is_dir), dirs, removed)
    if drop:
        changed = True
        items = [i for i in items if not (i.entry.is_dir and i.entry.name in drop)]
    return items if changed else None


class StageFile:
    """The unlinked temp file staged members are deflated into, opened on first use.

    Only the batch's writer appends (the batch lock serialises writers), so the end offset
    needs no lock of its own.
    """

    def __init__(self, opener: Callable[[], int]) -> None:
        self._open = opener
        self.fd: int | None = None
        self._end = 0

    def end(self) -> tuple[int, int]:
        """The file's descriptor and the offset the next member goes to."""
        if self.fd is None:
            self.fd, self._end = self._open(), 0
        return self.fd, self._end

    def grown(self, end: int) -> None:
        """A member now ends at ``end``."""
        self._end = end

    def close(self) -> None:
        """Drop the file (its staged members are written or discarded)."""
        if self.fd is not None:
            os.close(self.fd)
        self.fd = None


class StagedOps:
    """The operations of the current batch, what the engine expected, and the resulting view.

    The view (listing with the operations applied) is kept up to date in place while staging,
    because the engine stats and writes thousands of files in one batch; once :meth:`view`
    has handed it out with ``share=True`` (to a poller) it is never changed again.
    """

    def __init__(self) -> None:
        self.ops: dict[str, Op] = {}
        self._expected: dict[str, FileMeta | None] = {}
        self._view: dict[str, FileMeta] | None = None
        self._shared = False

    def __len__(self) -> int:
        return len(self.ops)

    def stage(self, path: str, op: Op, listing: Mapping[str, FileMeta]) -> None:
        """Record ``op`` for ``path``; the first touch remembers what ``listing`` held then."""
        self._expected.setdefault(path, listing.get(path))
        if isinstance(op, Moved):
            self._expected.setdefault(op.src, listing.get(op.src))
        self.ops[path] = op
        if self._view is None or self._shared:
            self._view = None
        elif op is None:
            self._view.pop(path, None)
        else:
            self._view[path] = meta_of(op.entry)

    def view(self, listing: dict[str, FileMeta], share: bool = False) -> dict[str, FileMeta]:
        """``listing`` with the staged operations applied."""
        if not self.ops:
            return listing
        self._shared |= share
        if self._view is None:
            self._shared = share
            view = dict(listing)
            for path, op in self.ops.items():
                if op is None:
                    view.pop(path, None)
                else:
                    view[path] = meta_of(op.entry)
            self._view = view
        return self._view

    def forget_view(self) -> None:
        """The listing underneath changed: rebuild the view on next use."""
        self._view = None

    def clear(self) -> None:
        """Forget everything (after a commit)."""
        self.ops.clear()
        self._expected.clear()
        self._view = None

    def still_valid(self, listing: Mapping[str, FileMeta]) -> tuple[dict[str, Op], list[str]]:
        """Split the operations: those whose names (and rename sources) still hold what they
        held when first staged, and the paths another program changed in the meantime."""
        valid: dict[str, Op] = {}
        changed: list[str] = []
        for path, op in self.ops.items():
            src = op.src if isinstance(op, Moved) else path
            if listing.get(path) != self._expected[path] or (
                listing.get(src) != self._expected[src]
            ):
                changed.append(path)
            else:
                valid[path] = op
        return valid, changed
