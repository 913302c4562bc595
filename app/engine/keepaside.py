"""Keeping a conflict's losing version under its conflict-copy name, its own name untouched.

The loser is copied to its conflict name first, while the original name still shows it: within
the location where the kind declares ``can_copy_aside`` (a folder clones or copies the very
file it checked, an S3 server copies the object from the version checked), else through the
location's own ``open_read`` and ``guarded_write``, spooled locally in between (ZIP, FTP,
SFTP, and S3 where the server makes no copies). Only then does the winner's guarded write
replace the original name, atomically and only if it still holds the loser. So a reader never
finds the name missing, and if the winner's copy fails (a full disk, a server gone, a stop)
both versions still have a name. The conflict copy is always a file of its own, never a second
name of the loser's file: a program writing into the name before the winner lands must not
rewrite it. If it cannot be made (a full disk), the keep-aside fails and the winner is not
written there.

Runs on the location's worker (see :mod:`app.engine.workers`). ``hashlib`` (OpenSSL),
``tempfile`` and ``shutil`` load at the first conflict that needs them, not at every start:
together 4-5 ms of a restart that has no conflict to keep.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterator, Sequence
from itertools import zip_longest
from typing import BinaryIO, NamedTuple, cast

from app.engine.stopping import stop_aware
from app.errors import FileChanged, FileSyncError, NotSupported
from app.locations.base import CHUNK_SIZE, FileMeta, Location


class KeptAside(NamedTuple):
    """Where the loser was kept (its original name still holds it, untouched)."""

    name: str
    #: The conflict copy as its location reports it (recorded in the index).
    meta: FileMeta


def keep_aside(
    loc: Location,
    path: str,
    loser: FileMeta,
    names: Sequence[str],
    taken: Collection[str],
    *,
    stopping: threading.Event | None,
) -> KeptAside:
    """Give the loser at ``path`` the first usable name of ``names``.

    A name that already holds the loser (kept by an earlier attempt whose winner copy failed)
    is used as it is; any other existing name is skipped, and so is a missing one in
    ``taken`` (the index knows it there: it was deleted and that delete is not synced yet).
    Raises :class:`FileChanged` if ``path`` no longer holds ``loser``.
    """
    if loc.stat(path) != loser:
        raise FileChanged("changed while syncing; will retry", location=loc.name, path=path)
    for name in names:
        found = loc.stat(name)
        if found is not None:
            if _holds_loser(loc, path, name, found, loser, stopping=stopping):
                return KeptAside(name, found)
            continue
        if name in taken:
            continue
        try:
            return _keep(loc, path, name, loser, stopping)
        except FileExistsError:  # a name made since the stat: try the next one
            continue
    raise FileSyncError(
        "no free name for a conflict copy; rename or delete old conflict copies",
        location=loc.name,
        path=path,
    )


def _keep(
    loc: Location, path: str, name: str, loser: FileMeta, stopping: threading.Event | None
) -> KeptAside:
    if loc.capabilities.can_copy_aside:
        with contextlib.suppress(NotSupported):  # cannot here: copy through the stream
            return KeptAside(name, loc.copy_aside(path, name, loser))
    import shutil
    import tempfile

    # A server's one session cannot read and write at once: the bytes wait in a local spool.
    with tempfile.SpooledTemporaryFile(max_size=CHUNK_SIZE) as spool:
        with loc.open_read(path) as stream:
            shutil.copyfileobj(stop_aware(stream, stopping), spool, CHUNK_SIZE)
        spool.seek(0)
        meta = loc.guarded_write(name, cast(BinaryIO, spool), loser.mtime_ns, None)
    return KeptAside(name, meta)


def _holds_loser(
    loc: Location,
    path: str,
    name: str,
    found: FileMeta,
    loser: FileMeta,
    *,
    stopping: threading.Event | None,
) -> bool:
    """Whether ``name`` holds the loser's bytes: a known tag says so (ZIP's CRC), otherwise
    their digests, read one after the other (one server session)."""
    if found.size != loser.size:
        return False
    if found == loser and found.tag != 0:
        return True
    return _digest(loc, path, stopping) == _digest(loc, name, stopping)


def _digest(loc: Location, path: str, stopping: threading.Event | None) -> bytes:
    import hashlib

    digest = hashlib.sha256()
    with loc.open_read(path) as raw:
        stream = stop_aware(raw, stopping)
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.digest()


def streams_equal(a: BinaryIO, b: BinaryIO) -> bool:
    """Compare two streams chunk by chunk (never a whole file in memory)."""
    return all(chunk_a == chunk_b for chunk_a, chunk_b in zip_longest(_chunks(a), _chunks(b)))


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while True:
        chunk = stream.read(CHUNK_SIZE)
        if not chunk:
            return
        yield chunk
