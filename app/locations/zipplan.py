"""Planning one archive rewrite: staged operations in, the new archive's members out.

Pure apart from reading local headers of renamed members, so the rules are easy to test:
members keep their order, a replaced member keeps its place, new members go at the end,
earlier duplicates of a name disappear (the last one counts), unsafe and internal names and
directory entries are kept untouched, except directory entries a delete left empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.locations.base import FileMeta
from app.locations.zipformat import (
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
from app.locations.zipparse import read_local_header
from app.locations.zipstream import Blob, Item


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
    """The meta a scan reports for ``entry``."""
    return FileMeta(entry.usize, entry.mtime_ns)


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
    parts = path.rstrip("/").split("/")[:-1]
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


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


def plan_members(
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
