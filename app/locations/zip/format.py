"""The ZIP file format at the level of records: entries, extra fields, times, names, headers.

We handle records ourselves instead of using :mod:`zipfile`, which cannot copy a member's
compressed bytes into a new archive and re-parses the whole central directory on every open.
A ZIP location needs both: unchanged members are copied raw when the archive is rewritten,
and the parsed directory is kept between batches. Parsing lives in
:mod:`app.locations.zip.parse`, streaming member data in :mod:`app.locations.zip.stream`.

Each entry owns the byte *span* from its local header to the next member's local header (or
the central directory). A span includes any data descriptor, so a member that is kept is copied
as one opaque range of bytes; only its central record changes (its offset).
"""

from __future__ import annotations

import calendar
import struct
import time
import zlib
from dataclasses import dataclass
from typing import NamedTuple

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
EOCD_SIG = b"PK\x05\x06"
EOCD64_SIG = b"PK\x06\x06"
EOCD64_LOCATOR_SIG = b"PK\x06\x07"

LOCAL_FMT = struct.Struct("<4sHHHHHIIIHH")
CENTRAL_FMT = struct.Struct("<4sHHHHHHIIIHHHHHII")
EOCD_FMT = struct.Struct("<4sHHHHIIH")
EOCD64_FMT = struct.Struct("<4sQHHIIQQQQ")
LOCATOR_FMT = struct.Struct("<4sIQI")

FLAG_ENCRYPTED = 0x1
FLAG_DATA_DESCRIPTOR = 0x8
FLAG_UTF8 = 0x800
STORED = 0
DEFLATED = 8

EXTRA_ZIP64 = 0x0001
EXTRA_NTFS = 0x000A
EXTRA_UNIX_TIME = 0x5455
EXTRA_UNICODE_PATH = 0x7075

#: Sizes and offsets at or above this need ZIP64 fields. Tests lower it to exercise ZIP64.
ZIP64_LIMIT = 0xFFFFFFFF
#: Entry counts at or above this need a ZIP64 end record.
ZIP64_COUNT_LIMIT = 0xFFFF

#: ``version made by``: Unix (3) and spec version 2.0 / 4.5 (ZIP64).
MADE_BY_UNIX = 3 << 8
DEFAULT_EXT_ATTR = 0o100644 << 16
_NTFS_EPOCH_OFFSET = 116_444_736_000_000_000  # 1601-01-01 to 1970-01-01 in 100 ns units


class Entry(NamedTuple):
    """One central-directory record, with the decoded name and the member's byte span.

    A named tuple rather than a dataclass: a rewrite makes 10,000s of copies with new
    offsets, and ``_replace`` is several times cheaper than ``dataclasses.replace``.

    ``extra`` is the central extra field without any ZIP64 field (those are rebuilt from the
    sizes on write). ``offset`` is the absolute position of the local header in the file;
    ``span_end`` is where the next member (or the central directory) starts.
    """

    name: str
    raw_name: bytes
    made_by: int
    needed: int
    flags: int
    method: int
    dos_time: int
    dos_date: int
    crc: int
    csize: int
    usize: int
    int_attr: int
    ext_attr: int
    offset: int
    extra: bytes
    comment: bytes
    mtime_ns: int
    span_end: int = 0

    @property
    def is_dir(self) -> bool:
        """True for a directory entry (name ends with a slash)."""
        return self.name.endswith("/")


@dataclass(frozen=True, slots=True)
class Directory:
    """A parsed archive: its entries in central-directory order and where the parts lie."""

    entries: tuple[Entry, ...]
    #: Bytes before the first member (a self-extractor stub), copied verbatim on rewrite.
    prefix_end: int
    comment: bytes


# --- extra fields -----------------------------------------------------------------------


def iter_extra(extra: bytes) -> list[tuple[int, bytes]]:
    """Split an extra field into ``(header id, data)`` pairs; a torn tail is ignored."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos + 4 <= len(extra):
        hid, size = struct.unpack_from("<HH", extra, pos)
        out.append((hid, extra[pos + 4 : pos + 4 + size]))
        pos += 4 + size
    return out


def strip_extra(extra: bytes, *drop: int) -> bytes:
    """Return ``extra`` without the fields whose ids are in ``drop``."""
    if not extra:
        return extra
    return b"".join(
        struct.pack("<HH", hid, len(data)) + data
        for hid, data in iter_extra(extra)
        if hid not in drop
    )


def unix_time_extra(mtime_s: int) -> bytes:
    """The Info-ZIP extended timestamp (0x5455) holding only the modification time."""
    return struct.pack("<HHBI", EXTRA_UNIX_TIME, 5, 1, mtime_s)


# --- time -------------------------------------------------------------------------------


def dos_datetime(mtime_ns: int) -> tuple[int, int]:
    """Return ``(dos_date, dos_time)`` for a UTC time, in local time, clamped to 1980-2107."""
    secs = mtime_ns // 1_000_000_000
    try:
        tm = time.localtime(secs)
        year, mon, day, hour, minute, sec = tm[:6]
    except (OverflowError, OSError, ValueError):
        year, mon, day, hour, minute, sec = (1980, 1, 1, 0, 0, 0) if secs < 0 else (2107,) * 6
    if year < 1980:
        year, mon, day, hour, minute, sec = 1980, 1, 1, 0, 0, 0
    elif year > 2107:
        year, mon, day, hour, minute, sec = 2107, 12, 31, 23, 59, 58
    date = (year - 1980) << 9 | mon << 5 | day
    return date, hour << 11 | minute << 5 | sec // 2


def _dos_to_ns(dos_date: int, dos_time: int) -> int:
    year = (dos_date >> 9) + 1980
    mon = max(1, min(12, (dos_date >> 5) & 0xF))
    day = max(1, dos_date & 0x1F)
    hour, minute, sec = dos_time >> 11, (dos_time >> 5) & 0x3F, (dos_time & 0x1F) * 2
    try:
        secs = time.mktime((year, mon, day, hour, minute, sec, 0, 0, -1))
    except (OverflowError, ValueError):
        secs = calendar.timegm((year, mon, day, hour, minute, sec, 0, 0, 0))
    return int(secs) * 1_000_000_000


def entry_mtime_ns(
    dos_date: int, dos_time: int, extra: bytes, dos_cache: dict[int, int] | None = None
) -> int:
    """Return a member's mtime: extended timestamp, else NTFS time, else the local DOS time.

    ``dos_cache`` memoizes DOS conversions within one parse: each ``mktime`` makes glibc stat
    ``/etc/localtime``, which adds up over 10,000s of members.
    """
    ntfs: int | None = None
    for hid, data in iter_extra(extra):
        if hid == EXTRA_UNIX_TIME and len(data) >= 5 and data[0] & 1:
            return int(struct.unpack_from("<I", data, 1)[0]) * 1_000_000_000
        if hid == EXTRA_NTFS and len(data) >= 32:
            tag, size = struct.unpack_from("<HH", data, 4)
            if tag == 1 and size >= 24:
                ntfs = (struct.unpack_from("<Q", data, 8)[0] - _NTFS_EPOCH_OFFSET) * 100
    if ntfs is not None:
        return ntfs
    if dos_cache is None:
        return _dos_to_ns(dos_date, dos_time)
    key = dos_date << 16 | dos_time
    found = dos_cache.get(key)
    if found is None:
        found = dos_cache[key] = _dos_to_ns(dos_date, dos_time)
    return found


# --- names ------------------------------------------------------------------------------


def decode_name(raw: bytes, flags: int, extra: bytes) -> str:
    """Decode a member name: UTF-8 flag, Info-ZIP Unicode path field, UTF-8, then CP437.

    Info-ZIP ``zip`` on Linux stores UTF-8 bytes without the flag (plus a 0x7075 field), so
    bytes that are valid UTF-8 are taken as UTF-8 before falling back to the legacy CP437.
    """
    if flags & FLAG_UTF8:
        return raw.decode("utf-8", "surrogateescape")
    for hid, data in iter_extra(extra):
        if (
            hid == EXTRA_UNICODE_PATH
            and len(data) >= 5
            and data[0] == 1
            and struct.unpack_from("<I", data, 1)[0] == zlib.crc32(raw)
        ):
            try:
                return data[5:].decode("utf-8")
            except UnicodeDecodeError:
                break
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def encode_name(name: str) -> tuple[bytes, int]:
    """Return the name's bytes and the flag bits it needs (UTF-8 unless plain ASCII)."""
    raw = name.encode("utf-8", "surrogateescape")
    return raw, (0 if raw.isascii() else FLAG_UTF8)


# --- building headers -------------------------------------------------------------------


def local_header(entry: Entry, extra: bytes) -> bytes:
    """Build a local header for ``entry`` carrying ``extra`` (ZIP64 field added if needed)."""
    zip64 = entry.usize >= ZIP64_LIMIT or entry.csize >= ZIP64_LIMIT
    extra = strip_extra(extra, EXTRA_ZIP64)
    usize, csize, needed = entry.usize, entry.csize, entry.needed
    if zip64:
        extra = struct.pack("<HHQQ", EXTRA_ZIP64, 16, usize, csize) + extra
        usize = csize = 0xFFFFFFFF
        needed = max(needed, 45)
    head = LOCAL_FMT.pack(
        LOCAL_SIG, needed, entry.flags, entry.method, entry.dos_time, entry.dos_date,
        entry.crc, csize, usize, len(entry.raw_name), len(extra),
    )  # fmt: skip
    return head + entry.raw_name + extra


def central_record(entry: Entry, offset: int) -> bytes:
    """Build the central-directory record of ``entry`` whose local header is at ``offset``."""
    usize, csize, off = entry.usize, entry.csize, offset
    big: list[int] = []
    for value in (usize, csize, off):
        if value >= ZIP64_LIMIT:
            big.append(value)
    extra = entry.extra
    needed = entry.needed
    if big:
        extra = struct.pack(f"<HH{len(big)}Q", EXTRA_ZIP64, 8 * len(big), *big) + extra
        needed = max(needed, 45)
        usize, csize, off = (0xFFFFFFFF if v >= ZIP64_LIMIT else v for v in (usize, csize, off))
    head = CENTRAL_FMT.pack(
        CENTRAL_SIG, entry.made_by, needed, entry.flags, entry.method, entry.dos_time,
        entry.dos_date, entry.crc, csize, usize, len(entry.raw_name), len(extra),
        len(entry.comment), 0, entry.int_attr, entry.ext_attr, off,
    )  # fmt: skip
    return head + entry.raw_name + extra + entry.comment


def end_records(count: int, cd_offset: int, cd_size: int, comment: bytes) -> bytes:
    """Build the end of the archive, with ZIP64 end records when the numbers need them."""
    out = b""
    if count >= ZIP64_COUNT_LIMIT or cd_offset >= ZIP64_LIMIT or cd_size >= ZIP64_LIMIT:
        rec_pos = cd_offset + cd_size
        out += EOCD64_FMT.pack(
            EOCD64_SIG, EOCD64_FMT.size - 12, MADE_BY_UNIX | 45, 45, 0, 0,
            count, count, cd_size, cd_offset,
        )  # fmt: skip
        out += LOCATOR_FMT.pack(EOCD64_LOCATOR_SIG, 0, rec_pos, 1)
        count = min(count, 0xFFFF)
        cd_size, cd_offset = (min(v, 0xFFFFFFFF) for v in (cd_size, cd_offset))
    comment = comment[:0xFFFF]
    out += EOCD_FMT.pack(EOCD_SIG, 0, 0, count, count, cd_size, cd_offset, len(comment))
    return out + comment
