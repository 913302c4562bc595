"""The hub journal around a server kind's writes: one mixin for FTP and SFTP alike.

A kind mixes :class:`JournaledWrites` in, keeps a :class:`HubJournal` in ``_journal`` and says
how to reach its connection (``_call``) and the journal's file operations on it
(``_journal_store``). Writes then call :meth:`_journaled`; deletes and renames call
``_journal.forget`` and :meth:`_send_journal`. Lines wait for the end of the engine's batch
(one append per batch), unless an upload lists exactly like the file it replaced.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from app.errors import FileSyncError
from app.locations.base import FileMeta, Listing
from app.locations.remote.hubjournal import HubJournal, JournalStore

log = logging.getLogger(__name__)

C = TypeVar("C")
T = TypeVar("T")


class JournaledWrites(Generic[C]):
    """Journal upkeep for a location whose connection objects are of type ``C``."""

    _journal: HubJournal
    #: Open :meth:`batch` blocks (the engine nests none, tests may).
    _batching: int
    #: What a send may raise on this kind's connection; the lines then stay pending.
    _journal_errors: tuple[type[BaseException], ...]

    def _call(self, what: str, action: Callable[[C], T], path: str | None = None) -> T:
        """Run ``action`` on the connection (provided by the kind)."""
        raise NotImplementedError

    def _journal_store(self, conn: C) -> JournalStore:
        """The journal's file operations on the held connection (provided by the kind)."""
        raise NotImplementedError

    def _journaled(self, conn: C, path: str, meta: FileMeta, urgent: bool = False) -> FileMeta:
        """Record our upload of ``path`` in the hub journal; return its meta with the new tag
        (``meta`` as it was if the server turned out not to take the journal)."""
        tagged = self._journal.record(path, meta)
        self._send_journal(conn, urgent)
        return tagged if self._journal.writable else meta

    def _send_journal(self, conn: C, urgent: bool = False) -> None:
        """Send pending journal lines now, unless a batch is open (it sends them at its end or
        when enough have gathered) and nothing is ``urgent``."""
        if urgent or not self._batching or self._journal.due(time.monotonic()):
            self._flush_journal(conn)

    def _flush_journal(self, conn: C) -> None:
        """A failed send stays pending (the next batch or poll sends it); the write stands."""
        try:
            self._journal.flush(self._journal_store(conn))
        except self._journal_errors as exc:
            log.info("%s: journal not written yet (%s); will retry", self._journal.name, exc)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the journal lines of one engine batch into one append."""
        self._batching += 1
        try:
            yield
        finally:
            self._batching -= 1
            if not self._batching and self._journal.pending:
                with contextlib.suppress(FileSyncError):
                    self._call("writing the journal", self._flush_journal)

    def prune_journal(self, listing: Listing | None) -> None:
        """Remove journals of FileSync runs that ended long ago (see ``hubjournal``), keeping
        the entries ``listing`` (the latest full scan; None: none yet) still matches."""
        now = time.time_ns()
        if listing is None:
            return
        with contextlib.suppress(FileSyncError):
            self._call(
                "pruning the journal",
                lambda conn: self._journal.prune(self._journal_store(conn), listing, now),
            )
