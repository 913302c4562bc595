"""Asking for a file's path on a terminal, with tab completion of paths where readline exists.

Used by ``filesync run --file`` without a value, as the original FileSync asked for its
locations file. The answer is re-asked until ``accept`` takes it; each refusal is shown as
one line saying why (missing, unreadable, not text).
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from app.errors import FileSyncError

T = TypeVar("T")


class NoAnswer(FileSyncError):
    """The terminal closed (Ctrl-D) before a usable path was given."""


def ask_path(prompt: str, accept: Callable[[Path], T]) -> T:
    """Ask for a path until ``accept(path)`` returns instead of raising FileSyncError.

    ``~`` is expanded; an empty answer asks again; end of input raises :class:`NoAnswer`.
    """
    with path_completion():
        while True:
            try:
                answer = input(prompt).strip()
            except EOFError:
                print(file=sys.stdout)
                raise NoAnswer("no path given") from None
            if not answer:
                continue
            try:
                return accept(Path(os.path.expanduser(answer)))
            except FileSyncError as exc:
                print(f"filesync: {exc}", file=sys.stderr)


def complete_path(text: str, state: int) -> str | None:
    """The ``state``-th path starting with ``text`` (folders end in ``/``), readline style."""
    matches = sorted(glob.glob(glob.escape(os.path.expanduser(text)) + "*"))
    if state >= len(matches):
        return None
    match = matches[state]
    return match + os.sep if os.path.isdir(match) else match


@contextlib.contextmanager
def path_completion() -> Iterator[None]:
    """Complete paths with Tab while inside, then restore readline's previous set-up."""
    try:
        import readline
    except ImportError:  # Windows without pyreadline: plain input
        yield
        return
    old_completer = readline.get_completer()
    old_delims = readline.get_completer_delims()
    readline.set_completer(complete_path)
    readline.set_completer_delims("\n")  # the whole answer is one path, spaces and all
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
    try:
        yield
    finally:
        readline.set_completer(old_completer)
        readline.set_completer_delims(old_delims)
