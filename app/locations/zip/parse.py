"""Reading a ZIP archive's central directory (ZIP64 aware) and members' local headers.

Everything is read with ``pread`` from a descriptor the caller owns, so a reader and a poller
can share it. Anything inconsistent (no end record, a directory outside the file, members that
overlap, a torn record) raises :class:`~app.errors.CorruptArchive`: the archive is then left
alone, never "repaired" by a rewrite.
"""

from __future__ import annotations

import os
import struct

from app.errors import CorruptArchive
from app.locations.zip.format import (
    CENTRAL_FMT,
    CENTRAL_SIG,
    EOCD64_FMT,
    EOCD64_LOCATOR_SIG,
    EOCD64_SIG,
    EOCD_FMT,
    EOCD_SIG,
    EXTRA_ZIP64,
    LOCAL_FMT,
    LOCAL_SIG,
    LOCATOR_FMT,
    Directory,
    Entry,
    decode_name,
    entry_mtime_ns,
    iter_extra,
    strip_extra,
)

_MAX_EOCD_SEARCH = 0xFFFF + EOCD_FMT.size


# --- parsing ----------------------------------------------------------------------------


def _pread_exact(fd: int, size: int, offset: int, what: str) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise CorruptArchive(f"not a readable ZIP archive: the file ends inside the {what}")
    return data


def _find_eocd(fd: int, file_size: int) -> tuple[int, bytes]:
    """Return the position and bytes of the end-of-central-directory record."""
    if file_size < EOCD_FMT.size:
        raise CorruptArchive("not a ZIP archive (too short to hold a central directory)")
    start = max(0, file_size - _MAX_EOCD_SEARCH)
    tail = os.pread(fd, file_size - start, start)
    pos = tail.rfind(EOCD_SIG)
    while pos >= 0:
        comment_len = struct.unpack_from("<H", tail, pos + 20)[0] if pos + 22 <= len(tail) else -1
        if pos + EOCD_FMT.size + comment_len == len(tail):
            return start + pos, tail[pos:]
        pos = tail.rfind(EOCD_SIG, 0, pos)
    raise CorruptArchive("not a ZIP archive, or truncated (no end-of-central-directory record)")


def _zip64_end(fd: int, eocd_pos: int) -> tuple[int, int, int, int]:
    """Return ``(entry count, cd size, cd offset, record position)`` from the ZIP64 end."""
    if eocd_pos < LOCATOR_FMT.size:
        raise CorruptArchive("truncated ZIP64 archive (no ZIP64 end locator)")
    loc = _pread_exact(fd, LOCATOR_FMT.size, eocd_pos - LOCATOR_FMT.size, "ZIP64 locator")
    sig, disk, rec_off, disks = LOCATOR_FMT.unpack(loc)
    if sig != EOCD64_LOCATOR_SIG:
        raise CorruptArchive("ZIP64 end locator missing where the end record says it is")
    if disk != 0 or disks > 1:
        raise CorruptArchive("split (multi-disk) archives are not supported")
    # Look where the record should be, before the locator (handles a prepended stub too).
    rec_pos = eocd_pos - LOCATOR_FMT.size - EOCD64_FMT.size
    rec = _pread_exact(fd, EOCD64_FMT.size, rec_pos, "ZIP64 end record")
    if rec[:4] != EOCD64_SIG:
        rec_pos = rec_off
        rec = _pread_exact(fd, EOCD64_FMT.size, rec_pos, "ZIP64 end record")
        if rec[:4] != EOCD64_SIG:
            raise CorruptArchive("ZIP64 end record is missing or damaged")
    fields = EOCD64_FMT.unpack(rec)
    return fields[7], fields[8], fields[9], rec_pos


def _apply_zip64(
    extra: bytes, usize: int, csize: int, offset: int, name: str
) -> tuple[int, int, int]:
    for hid, data in iter_extra(extra):
        if hid != EXTRA_ZIP64:
            continue
        pos = 0
        values = [usize, csize, offset]
        for i, value in enumerate(values):
            if value == 0xFFFFFFFF:
                if pos + 8 > len(data):
                    raise CorruptArchive(f"member {name!r} has a torn ZIP64 field")
                values[i] = struct.unpack_from("<Q", data, pos)[0]
                pos += 8
        return values[0], values[1], values[2]
    return usize, csize, offset


def parse_directory(fd: int, file_size: int) -> Directory:
    """Parse the central directory of the archive open at ``fd``; raise CorruptArchive."""
    eocd_pos, eocd = _find_eocd(fd, file_size)
    _, disk, cd_disk, _, count, cd_size, cd_offset, _ = EOCD_FMT.unpack_from(eocd)
    comment = eocd[EOCD_FMT.size :]
    end_pos = eocd_pos
    if (disk, cd_disk) != (0, 0) and 0xFFFF not in (disk, cd_disk):
        raise CorruptArchive("split (multi-disk) archives are not supported")
    has_locator = (
        eocd_pos >= LOCATOR_FMT.size
        and os.pread(fd, 4, eocd_pos - LOCATOR_FMT.size) == EOCD64_LOCATOR_SIG
    )
    if has_locator or count == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        count, cd_size, cd_offset, end_pos = _zip64_end(fd, eocd_pos)
    # Data prepended without fixing the offsets (``cat stub a.zip``): shift everything.
    shift = end_pos - cd_size - cd_offset
    if shift < 0 or cd_offset + shift < 0:
        raise CorruptArchive("the central directory lies outside the file (truncated?)")
    cd_start = cd_offset + shift
    cd = _pread_exact(fd, cd_size, cd_start, "central directory")
    entries: list[Entry] = []
    dos_cache: dict[int, int] = {}
    pos = 0
    for _ in range(count):
        if cd[pos : pos + 4] != CENTRAL_SIG:
            raise CorruptArchive("the central directory is damaged (bad record signature)")
        f = CENTRAL_FMT.unpack_from(cd, pos)
        name_end = pos + CENTRAL_FMT.size + f[10]
        extra_end = name_end + f[11]
        raw_name = cd[pos + CENTRAL_FMT.size : name_end]
        extra = cd[name_end:extra_end]
        comment_b = cd[extra_end : extra_end + f[12]]
        if extra_end + f[12] > len(cd):
            raise CorruptArchive("the central directory is damaged (record overruns it)")
        pos = extra_end + f[12]
        name = decode_name(raw_name, f[3], extra)
        usize, csize, offset = _apply_zip64(extra, f[9], f[8], f[16], name)
        entries.append(
            Entry(
                name=name,
                raw_name=raw_name,
                made_by=f[1],
                needed=f[2],
                flags=f[3],
                method=f[4],
                dos_time=f[5],
                dos_date=f[6],
                crc=f[7],
                csize=csize,
                usize=usize,
                int_attr=f[14],
                ext_attr=f[15],
                offset=offset + shift,
                extra=strip_extra(extra, EXTRA_ZIP64),
                comment=comment_b,
                mtime_ns=entry_mtime_ns(f[6], f[5], extra, dos_cache),
            )
        )
    return Directory(_with_spans(entries, cd_start), _prefix_end(entries, cd_start), comment)


def _prefix_end(entries: list[Entry], cd_start: int) -> int:
    return min((e.offset for e in entries), default=cd_start)


def _with_spans(entries: list[Entry], cd_start: int) -> tuple[Entry, ...]:
    """Give each entry the span up to the next member; refuse overlapping members."""
    order = sorted(range(len(entries)), key=lambda i: entries[i].offset)
    out = list(entries)
    for rank, i in enumerate(order):
        entry = entries[i]
        end = entries[order[rank + 1]].offset if rank + 1 < len(order) else cd_start
        if entry.offset + LOCAL_FMT.size + entry.csize > end:
            raise CorruptArchive(
                f"member {entry.name!r} overlaps the next member or the central directory "
                "(damaged or malicious archive)"
            )
        out[i] = entry._replace(span_end=end)
    return tuple(out)


def read_local_header(fd: int, entry: Entry) -> tuple[bytes, int]:
    """Return the local extra field of ``entry`` and the offset where its data starts."""
    head = _pread_exact(fd, LOCAL_FMT.size, entry.offset, f"local header of {entry.name!r}")
    fields = LOCAL_FMT.unpack(head)
    if fields[0] != LOCAL_SIG:
        raise CorruptArchive(f"member {entry.name!r} has a damaged local header")
    name_len, extra_len = fields[9], fields[10]
    start = entry.offset + LOCAL_FMT.size
    extra = _pread_exact(fd, extra_len, start + name_len, "local extra field")
    data_start = start + name_len + extra_len
    if data_start + entry.csize > entry.span_end:
        raise CorruptArchive(f"member {entry.name!r} runs past its end (damaged archive)")
    return extra, data_start
