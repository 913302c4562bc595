"""Parsing what FTP servers say about files: MLSD facts, LIST lines and MDTM/MFMT times.

Pure functions with no I/O, so every server dialect we meet can be pinned down in a unit test.
Times from MLSD, MDTM and MFMT are UTC (RFC 3659). LIST times are in the server's local zone
with minute resolution (or only a date for files older than about six months); we read them as
UTC, and the location declares a 60 s precision when LIST is all it has.

All times are truncated to whole seconds: one server gives fractions in MLSD but not in MDTM,
and a listing must compare equal to what ``write()`` returned for the same upload.
"""

from __future__ import annotations

import calendar
import re
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

NS = 1_000_000_000
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
#: A LIST date without a year is the most recent such date not more than this far in the future
#: (clock skew between us and the server, and the server's time zone offset).
_FUTURE_SLACK_S = 2 * 86400

_UNIX_RE = re.compile(
    r"^(?P<mode>[-dlcbpsDL])[-rwxsStTlL+.@]{9}\S*\s+"
    r"(?:\d+\s+)?(?:\S+\s+){1,2}?"
    r"(?P<size>\d+)\s+"
    r"(?P<mon>[A-Za-z]{3})\s+(?P<day>\d{1,2})\s+"
    r"(?:(?P<hour>\d{1,2}):(?P<minute>\d{2})|(?P<year>\d{4}))\s"
    r"(?P<name>.*)$"
)
_DOS_RE = re.compile(
    r"^(?P<month>\d{2})-(?P<day>\d{2})-(?P<year>\d{2}|\d{4})\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})\s*(?P<ampm>[AaPp][Mm])?\s+"
    r"(?:(?P<dir><DIR>)|(?P<size>\d+))\s+"
    r"(?P<name>.+)$"
)


class ListingParseError(ValueError):
    """A line or reply from the server is not in any format we know."""


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    """One directory entry as the server described it.

    ``mtime_ns`` is None when the listing carried no usable time (LIST without MDTM, a
    symlink). ``tag`` is a stable checksum of MLSD's ``unique`` fact (device and inode on most
    servers; 0 without it): a file replaced within the same second with the same size still
    shows up as changed. ``is_file``/``is_dir`` are both false for entries we never sync (symlinks,
    devices); callers skip them. ``is_link`` marks a symbolic link the server admits to (a LIST
    ``l`` line, MLSD ``type=OS.unix=symlink``/``slink``): the location reports it, so the files
    it hides are held instead of read as deleted.
    """

    name: str
    is_file: bool
    is_dir: bool
    size: int
    mtime_ns: int | None
    tag: int = 0
    is_link: bool = False


def parse_ftp_time(text: str) -> int:
    """Return ns since the epoch for an RFC 3659 time ``YYYYMMDDHHMMSS[.fff]`` (UTC).

    The fraction is dropped on purpose (see the module docstring).
    """
    digits = text.strip().split(".", 1)[0]
    if len(digits) != 14 or not digits.isdigit():
        raise ListingParseError(f"not an FTP time: {text!r}")
    try:  # datetime validates the fields; strptime would too, at ten times the cost
        stamp = datetime(
            int(digits[:4]), int(digits[4:6]), int(digits[6:8]),
            int(digits[8:10]), int(digits[10:12]), int(digits[12:14]),
            tzinfo=UTC,
        )  # fmt: skip
    except ValueError as exc:
        raise ListingParseError(f"not an FTP time: {text!r}") from exc
    return int(stamp.timestamp()) * NS


def format_ftp_time(mtime_ns: int) -> str:
    """Return ``YYYYMMDDHHMMSS`` (UTC) for MFMT / MDTM-set, truncated to the second."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(mtime_ns // NS))


def parse_mdtm_reply(reply: str) -> int:
    """Return the time from an MDTM reply ``213 YYYYMMDDHHMMSS``."""
    code, _, rest = reply.strip().partition(" ")
    if code != "213":
        raise ListingParseError(f"unexpected MDTM reply {reply!r}")
    return parse_ftp_time(rest.split()[0] if rest.split() else "")


def parse_mfmt_reply(reply: str) -> int:
    """Return the time a server reports having set: ``213 Modify=YYYYMMDDHHMMSS; path``."""
    code, _, rest = reply.strip().partition(" ")
    if code != "213":
        raise ListingParseError(f"unexpected MFMT reply {reply!r}")
    match = re.search(r"modify=(\d{14}(?:\.\d+)?)", rest, re.IGNORECASE)
    if match is None:
        raise ListingParseError(f"MFMT reply without a time: {reply!r}")
    return parse_ftp_time(match.group(1))


def parse_mlsx_facts(line: str) -> tuple[dict[str, str], str]:
    """Split an MLSD/MLST line ``fact=value;fact=value; name`` into (facts, name).

    Fact names are case-insensitive (lower-cased here); the name is everything after the first
    space and may itself contain ``;``, ``=`` or spaces.
    """
    facts_text, sep, name = line.partition(" ")
    if not sep or not name:
        raise ListingParseError(f"not an MLSD line: {line!r}")
    facts: dict[str, str] = {}
    for fact in facts_text.split(";"):
        if not fact:
            continue
        key, eq, value = fact.partition("=")
        if not eq:
            raise ListingParseError(f"bad fact {fact!r} in MLSD line {line!r}")
        facts[key.lower()] = value
    return facts, name


def parse_mlsd_line(line: str) -> RemoteEntry | None:
    """Return the entry an MLSD line describes, or None for ``cdir``/``pdir``/``.``/``..``.

    pure-ftpd and others list the folder itself and its parent; those must never be read as
    sub-folders (that would recurse for ever).
    """
    facts, name = parse_mlsx_facts(line.rstrip("\r\n"))
    kind = facts.get("type", "").lower()
    if kind in ("cdir", "pdir") or name in (".", ".."):
        return None
    is_file = kind == "file"
    is_dir = kind == "dir"
    size = 0
    if is_file:
        try:
            size = int(facts.get("size", ""))
        except ValueError as exc:
            raise ListingParseError(f"MLSD line without a size: {line!r}") from exc
    mtime_ns = parse_ftp_time(facts["modify"]) if "modify" in facts else None
    unique = facts.get("unique", "")
    tag = zlib.crc32(unique.encode()) if unique else 0
    is_link = kind.startswith(("os.unix=symlink", "os.unix=slink"))
    return RemoteEntry(name, is_file, is_dir, size, mtime_ns, tag, is_link)


def _infer_year(month: int, day: int, hour: int, minute: int, now: float) -> int:
    """Pick the year of a LIST date shown without one: the latest not in the future."""
    year = time.gmtime(now).tm_year
    stamp = calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0))
    if stamp > now + _FUTURE_SLACK_S:
        year -= 1
    return year


def parse_list_line(line: str, now: float | None = None) -> RemoteEntry | None:
    """Parse one LIST line (Unix ``ls -l`` style or DOS/IIS style); None for lines to skip.

    Skipped: ``total N`` headers, blank lines, ``.`` and ``..``. Symlinks come back with
    neither ``is_file`` nor ``is_dir`` (their target is unknown). ``now`` (seconds) fixes the
    year of recent dates; tests pass it, callers use the clock.
    """
    text = line.rstrip("\r\n")
    if not text.strip() or text.lower().startswith("total "):
        return None
    now = time.time() if now is None else now
    match = _UNIX_RE.match(text)
    if match is not None:
        return _unix_entry(match, now)
    match = _DOS_RE.match(text)
    if match is not None:
        return _dos_entry(match)
    raise ListingParseError(f"unknown LIST format: {text!r}")


def _unix_entry(match: re.Match[str], now: float) -> RemoteEntry | None:
    mode = match.group("mode").lower()
    name = match.group("name")
    month = _MONTHS.get(match.group("mon").lower())
    if month is None:
        raise ListingParseError(f"unknown month in LIST line: {match.group(0)!r}")
    day = int(match.group("day"))
    if match.group("year"):
        year, hour, minute = int(match.group("year")), 0, 0
    else:
        hour, minute = int(match.group("hour")), int(match.group("minute"))
        year = _infer_year(month, day, hour, minute, now)
    if mode == "l":
        name = name.split(" -> ", 1)[0]
    if name in (".", ".."):
        return None
    stamp = calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0)) * NS
    size = int(match.group("size"))
    return RemoteEntry(name, mode == "-", mode == "d", size, stamp, is_link=mode == "l")


def _dos_entry(match: re.Match[str]) -> RemoteEntry | None:
    name = match.group("name")
    if name in (".", ".."):
        return None
    year = int(match.group("year"))
    if year < 100:
        year += 2000 if year < 70 else 1900
    hour = int(match.group("hour"))
    ampm = (match.group("ampm") or "").lower()
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    stamp = calendar.timegm(
        (year, int(match.group("month")), int(match.group("day")), hour,
         int(match.group("minute")), 0, 0, 0, 0)
    ) * NS  # fmt: skip
    is_dir = match.group("dir") is not None
    size = 0 if is_dir else int(match.group("size"))
    return RemoteEntry(name, not is_dir, is_dir, size, stamp)
