"""Putting file names into log lines, errors and activity rows without breaking them.

A Linux file name may contain a line break, other control characters or bytes that are not
UTF-8. Written as they are, such a name splits one log line in two (so a later line seems to
come from nowhere), and its undecodable bytes cannot be written to a UTF-8 log file at all.
"""

from __future__ import annotations

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "'": "\\'"}


def shown(path: str) -> str:
    """``path`` as it should appear in a message: unchanged if it is plain printable text,
    else quoted with escapes (``'two\\nlines'``, ``'caf\\xe9'`` for an undecodable byte)."""
    if path.isprintable():
        return path
    return "'" + "".join(_escape(c) for c in path) + "'"


def _escape(char: str) -> str:
    found = _ESCAPES.get(char)
    if found is not None:
        return found
    if char.isprintable():
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return repr(char)[1:-1]
