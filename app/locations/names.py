"""Which file names a kind of location can hold, and which names are unsafe anywhere.

A Linux folder holds any name that has no NUL: bytes that are not UTF-8 (carried in ``str``
as surrogate escapes, as :func:`os.fsdecode` does), ``:``, ``\\``, line breaks. A ZIP member
name or an FTP path is UTF-8 text read by programs that may take ``\\`` or ``C:`` as path
syntax, so those kinds cannot hold such names. Each kind declares a :class:`NamePolicy` in its
capabilities; the engine leaves a location out of every path its policy refuses, so such a
name is synced between the locations that can hold it and never blocks anything else.

Two checks are kept apart on purpose. :func:`check_posix_relpath` is "unsafe anywhere": a
name that is empty, absolute or has ``.``/``..`` parts would escape or alias the root in
every kind. :func:`check_relpath` adds what is unsafe where ``\\`` or a drive letter may be
path syntax; it guards every name read from an archive or a server, so a member ``..\\x``
can never become a path outside the root.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from app.errors import UnsafePath


def check_posix_relpath(path: str) -> str:
    """Return ``path`` if it is a relative POSIX path that stays inside a root, else raise.

    Refuses empty names, NUL, absolute paths and empty, ``.`` or ``..`` parts.
    """
    if not path or "\x00" in path or path.startswith("/"):
        raise UnsafePath(f"unsafe file name {path!r}")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePath(f"unsafe file name {path!r}")
    return path


def check_relpath(path: str) -> str:
    """Like :func:`check_posix_relpath`, also refusing backslashes and drive letters.

    For names coming from a ZIP or a server, where ``..\\x`` or ``C:x`` could be read as a
    path outside the root by the next program.
    """
    check_posix_relpath(path)
    if "\\" in path:
        raise UnsafePath(f"unsafe file name {path!r}")
    if _has_drive_letter(path):
        raise UnsafePath(f"unsafe file name {path!r} (drive letter)")
    return path


def _has_drive_letter(path: str) -> bool:
    return len(path) >= 2 and path[1] == ":" and path[0].isalpha()


def is_utf8(path: str) -> bool:
    """True when ``path`` is valid UTF-8 text (no surrogate escapes of undecodable bytes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class NamePolicy(NamedTuple):
    """Which relative paths a kind of location can hold, declared once per kind.

    ``utf8_only``: names must be valid UTF-8 (a folder takes any bytes). ``windows_syntax``:
    ``\\`` and a leading drive letter are refused, because the kind's readers may take them as
    path syntax. ``line_breaks``: CR and LF are allowed (a protocol with line-based commands
    cannot carry them).
    """

    utf8_only: bool
    windows_syntax: bool
    line_breaks: bool

    def refusal(self, path: str) -> str | None:
        """Why a location of this kind cannot hold ``path``; None when it can."""
        try:
            check_posix_relpath(path)
        except UnsafePath:
            return "not a safe relative path"
        if not path.isascii() and not is_utf8(path):
            if self.utf8_only:
                return "not valid UTF-8"
            try:
                path.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                return "not a name any file system can store"
        if self.windows_syntax and ("\\" in path or _has_drive_letter(path)):
            return "a backslash or drive letter is path syntax there"
        if not self.line_breaks and ("\n" in path or "\r" in path):
            return "a line break cannot be sent there"
        return None


#: A name part that is empty, ``.`` or ``..`` (or a name that starts with ``/``), a drive letter
#: at a name's start, or a character some kind refuses: in a ``\x00``-joined list of names.
_ODD = re.compile(r"(?:^|[/\x00])\.{0,2}(?=[/\x00]|$)|(?:^|\x00)[A-Za-z]:|[\\\n\r]")


def plain_names(paths: list[str]) -> bool:
    """True when every kind of location can hold every one of ``paths`` (see
    :meth:`NamePolicy.refusal`): ASCII relative paths with no odd part or character.

    One search over all of them, for the engine's bulk planning: asking each location's policy
    about each path of an initial sync cost a call per path.
    """
    joined = "\x00".join(paths)
    return (
        joined.isascii() and joined.count("\x00") == len(paths) - 1 and _ODD.search(joined) is None
    )


#: A POSIX folder: any bytes but NUL and ``/`` in a name.
POSIX_NAMES = NamePolicy(utf8_only=False, windows_syntax=False, line_breaks=True)
#: A ZIP archive: UTF-8 names (the format's flag says so), no Windows path syntax.
ZIP_NAMES = NamePolicy(utf8_only=True, windows_syntax=True, line_breaks=True)
#: An FTP server: UTF-8 on a line-based control connection, no Windows path syntax.
FTP_NAMES = NamePolicy(utf8_only=True, windows_syntax=True, line_breaks=False)
#: What a kind that declares nothing is assumed to hold: the names every kind can hold.
PORTABLE_NAMES = FTP_NAMES


def safe_label(text: str, fallback: str, fill: str = "-") -> str:
    """``text`` reduced to ``A-Z a-z 0-9 _ -`` (runs of anything else become ``fill``).

    A location's label goes into file names (conflict copies, trash folders), so it must be
    safe on every file system; ``fallback`` stands in when nothing is left.
    """
    return re.sub(r"[^A-Za-z0-9_-]+", fill, text).strip(fill) or fallback


def parent_folders(path: str) -> list[str]:
    """The folders that hold ``path``, nearest first: ``"a/b/c"`` -> ``["a/b", "a"]``."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]
