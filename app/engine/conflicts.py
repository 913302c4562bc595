"""Naming conflict copies: ``name.sync-conflict-YYYYMMDD-HHMMSS-<label>.ext``.

The time is the losing version's own mtime (UTC), so the name says which version it is and the
same conflict seen twice gets the same name. The label says which location it came from.
"""

from __future__ import annotations

import posixpath
import re
import time

from app.locations.names import safe_label

#: Keep names under common 255-byte file-name limits after the suffix is added.
_MAX_NAME_BYTES = 255
_CONFLICT_RE = re.compile(r"\.sync-conflict-\d{8}-\d{6}-[A-Za-z0-9_-]+")


def is_conflict_copy(path: str) -> bool:
    """True when ``path`` was made by :func:`conflict_name`."""
    return bool(_CONFLICT_RE.search(posixpath.basename(path)))


def original_path(copy: str) -> str:
    """The path a conflict copy is a version of: its name without the conflict suffix."""
    folder, base = posixpath.split(copy)
    name = _CONFLICT_RE.sub("", base, count=1)
    return posixpath.join(folder, name) if folder else name


def conflict_name(path: str, mtime_ns: int, label: str, attempt: int = 1) -> str:
    """Return the conflict-copy path for the version of ``path`` with this mtime."""
    folder, base = posixpath.split(path)
    stem, ext = posixpath.splitext(base)
    if not stem:  # a dot-file such as ".bashrc"
        stem, ext = base, ""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(mtime_ns // 1_000_000_000))
    safe = safe_label(label, "location")
    suffix = f".sync-conflict-{stamp}-{safe}" + (f"-{attempt}" if attempt > 1 else "")
    # A Linux name may hold bytes that are not UTF-8 (surrogate escapes): count real bytes.
    room = _MAX_NAME_BYTES - len((suffix + ext).encode("utf-8", "surrogateescape"))
    stem_bytes = stem.encode("utf-8", "surrogateescape")
    if len(stem_bytes) > room:
        cut = max(room, 0)
        while cut > 0 and stem_bytes[cut] & 0xC0 == 0x80:  # never split a UTF-8 character
            cut -= 1
        stem = stem_bytes[:cut].decode("utf-8", "surrogateescape")
    name = stem + suffix + ext
    return posixpath.join(folder, name) if folder else name
