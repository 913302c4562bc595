"""The hub journal: which exact version of each file a FileSync uploaded to a coarse server.

Why it exists: many servers list times to the second and offer no content fact (FTP's ``LIST``
+ ``MDTM``; pyftpdlib's ``MLSD``, whose ``unique`` is an inode that a later upload may reuse;
SFTP v3, whose attributes are size and whole-second times).
Two same-size saves uploaded within one second then list identically, and another machine
that pulled the first would keep it for ever. So every FileSync that uploads appends one line
per file to its own file in ``.filesync/journal/`` on the server::

    {"p": "docs/a.txt", "s": 20, "t": 1700000000, "v": "<random version id>"}

(``t`` is the listed second; a line with ``"d": 1`` withdraws the writer's entry for a path.)
A reader turns the entries that match what the listing shows (same size and second) into the
file's tag: a new upload always adds a new version id, so the tag changes even when the
listing does not, and the engine sees an edit. Entries that no longer match cost nothing.

Costs: one listing of the journal folder per scan or stat (an idle poll of the tree adds one
folder); a journal file is read only when its listed size changed, and then only the bytes
appended since (files are append-only; a rewrite goes to a new name). Lines are appended once
per engine batch. A reader uses only complete lines, so a half-written append is read later.

The journal names no protocol: each kind hands it a :class:`JournalStore` bound to its
connection (FTP: ``ftp/journal.py``, SFTP: ``sftp/journal.py``), and every method is called
with that connection held (its lock serialises them).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
import zlib
from dataclasses import dataclass
from typing import Protocol

from app.locations.base import META_DIR, FileMeta, Listing

log = logging.getLogger(__name__)

NS = 1_000_000_000
#: The folder on the server that holds one journal file per writer.
JOURNAL_DIR = f"{META_DIR}/journal"
SUFFIX = ".jsonl"
#: A writer starts a compacted journal file (only its live entries) beyond this size.
COMPACT_AT = 2 << 20
#: Another writer's journal idle this long, none of whose entries matches the listing any
#: more, is removed by housekeeping (its run has ended; its entries no longer affect a tag).
PRUNE_AFTER_NS = 86400 * NS
#: Within a batch, pending lines are sent once this many have gathered (or this many seconds
#: passed), so other machines are not left comparing bytes while a long batch runs.
FLUSH_LINES = 200
FLUSH_SECONDS = 1.0


class JournalRefused(Exception):
    """The server refused to append to the journal (a read-only account): not worth retrying."""


@dataclass(frozen=True, slots=True)
class JournalFile:
    """One journal file as the server lists it (``mtime_ns`` None if the listing has none)."""

    name: str
    size: int
    mtime_ns: int | None


class JournalStore(Protocol):
    """The few file operations the journal needs, on one kind's held connection.

    Paths are relative to the location's root (``.filesync/journal/x.jsonl``). Connection
    failures propagate as the kind's own errors; only the outcomes below are answers.
    """

    def list_journals(self) -> list[JournalFile]:
        """The files in :data:`JOURNAL_DIR`; none if the folder does not exist."""
        ...

    def read_from(self, path: str, offset: int) -> bytes | None:
        """The bytes of ``path`` from ``offset`` to its end; None if it is gone."""
        ...

    def append(self, path: str, data: bytes) -> None:
        """Append ``data`` to ``path`` (created if missing); raise :class:`JournalRefused`."""
        ...

    def make_folder(self, path: str) -> None:
        """Create the folder ``path`` if it does not exist (a refusal is ignored)."""
        ...

    def remove(self, path: str) -> None:
        """Delete ``path``; a missing or undeletable file is ignored."""
        ...


@dataclass(frozen=True, slots=True)
class Version:
    """One uploaded version of a path: its listed size and second, and a unique id."""

    size: int
    second: int
    version: str


def parse_journal(data: bytes) -> tuple[dict[str, Version | None], int]:
    """Return the entries of the complete lines in ``data`` and the bytes they span.

    ``None`` withdraws a path. Lines that are not valid entries (a torn append) are skipped.
    """
    end = data.rfind(b"\n") + 1
    entries: dict[str, Version | None] = {}
    for raw in data[:end].splitlines():
        try:
            item = json.loads(raw)
            path = item["p"]
            if not isinstance(path, str):
                continue
            if item.get("d"):
                entries[path] = None
            else:
                entries[path] = Version(int(item["s"]), int(item["t"]), str(item["v"]))
        except (ValueError, KeyError, TypeError):
            continue
    return entries, end


def format_entry(path: str, version: Version | None) -> str:
    """One journal line (with its newline)."""
    if version is None:
        return json.dumps({"p": path, "d": 1}) + "\n"
    item = {"p": path, "s": version.size, "t": version.second, "v": version.version}
    return json.dumps(item, ensure_ascii=False) + "\n"


class HubJournal:
    """This FileSync's journal on one server, and what it read of the others'."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: Unique per run: two FileSyncs never append to the same file.
        self.writer = uuid.uuid4().hex[:16]
        self.generation = 0
        #: False once the server refused an append (read-only account): tags come from
        #: the listing alone, as without a journal.
        self.writable = True
        self._proven = False
        self._theirs: dict[str, dict[str, Version]] = {}
        self._read: dict[str, int] = {}
        self._own: dict[str, Version] = {}
        self._pending: list[str] = []
        self._pending_since = 0.0
        self._own_bytes = 0
        self._torn = False
        self._folder_made = False
        #: path -> {journal file ("" for ours): version}, kept up to date entry by entry.
        self._by_path: dict[str, dict[str, Version]] = {}
        #: Our earlier journal files, removed once a compacted one is on the server.
        self._replaced: list[str] = []

    @property
    def own_file(self) -> str:
        """The journal file this run appends to."""
        return f"{JOURNAL_DIR}/{self.writer}-{self.generation}{SUFFIX}"

    @property
    def pending(self) -> bool:
        """True while journal lines wait to be sent."""
        return bool(self._pending) and self.writable

    # --- tags -----------------------------------------------------------------------------

    def tag(self, path: str, size: int, mtime_ns: int, listed: int = 0) -> int:
        """The tag for a listed file: a checksum of the journal versions that match it, and of
        ``listed``, the listing's own tag (MLSD's ``unique``; 0 if none), which it is if no
        version matches.

        Every writer's latest entry counts, so whoever uploaded last, the set of ids changes.
        ``listed`` counts too: a program other than FileSync replacing the file within the same
        second, with the same size, matches our entry but gets a new ``unique``.
        """
        second = mtime_ns // NS
        versions = self._by_path.get(path, {}).values()
        ids = sorted({v.version for v in versions if v.size == size and v.second == second})
        if not ids:
            return listed
        own = [str(listed)] if listed else []
        return zlib.crc32("|".join([*ids, *own]).encode()) or 1

    def _set(self, source: str, path: str, version: Version | None) -> None:
        """Record ``source``'s latest entry for ``path`` (None: withdrawn)."""
        if version is not None:
            self._by_path.setdefault(path, {})[source] = version
            return
        versions = self._by_path.get(path)
        if versions is not None and versions.pop(source, None) is not None and not versions:
            del self._by_path[path]

    def record(self, path: str, meta: FileMeta) -> FileMeta:
        """Note our upload of ``path`` (listed as ``meta``, whose tag is the listing's own);
        return ``meta`` with the tag a scan will now report."""
        if not self.writable:
            return meta
        version = Version(meta.size, meta.mtime_ns // NS, uuid.uuid4().hex)
        self._own[path] = version
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(format_entry(path, version))
        self._set("", path, version)
        tag = self.tag(path, meta.size, meta.mtime_ns, meta.tag)
        return FileMeta(meta.size, meta.mtime_ns, tag)

    def forget(self, path: str) -> None:
        """We deleted or renamed ``path`` away: withdraw our entry for it."""
        if self._own.pop(path, None) is not None:
            self._pending.append(format_entry(path, None))
            self._set("", path, None)

    # --- reading --------------------------------------------------------------------------

    def refresh(self, store: JournalStore) -> None:
        """Read what other writers appended since the last refresh (nothing if no size changed)."""
        listed = {
            f"{JOURNAL_DIR}/{e.name}": e
            for e in store.list_journals()
            if e.name.endswith(SUFFIX) and not e.name.startswith(self.writer)
        }
        for gone in set(self._theirs) - set(listed):
            self._drop(gone)
        for path, entry in listed.items():
            offset = self._read.get(path, 0)
            if entry.size == offset:
                continue
            if entry.size < offset:  # rewritten in place by some other tool: read it afresh
                self._drop(path)
                offset = 0
            data = store.read_from(path, offset)
            if data is None:
                continue  # removed since the listing
            entries, used = parse_journal(data)
            mine = self._theirs.setdefault(path, {})
            for rel, version in entries.items():
                if version is None:
                    mine.pop(rel, None)
                else:
                    mine[rel] = version
                self._set(path, rel, version)
            self._read[path] = offset + used

    def _drop(self, journal: str) -> None:
        """Forget everything read from ``journal`` (it is gone from the server)."""
        for rel in self._theirs.pop(journal, {}):
            self._set(journal, rel, None)
        self._read.pop(journal, None)

    # --- writing --------------------------------------------------------------------------

    def flush(self, store: JournalStore) -> None:
        """Append the pending entries to our journal file (compacting it when it grew large).

        A failed append keeps them pending for the next flush; a refused one (no permission)
        turns the journal off with one warning.
        """
        if not self._pending or not self.writable:
            return
        if self._own_bytes > COMPACT_AT:
            self._replaced.append(self.own_file)
            self.generation, self._own_bytes = self.generation + 1, 0
            self._pending = [format_entry(p, v) for p, v in self._own.items()]
            self._torn = False
        data = (("\n" if self._torn else "") + "".join(self._pending)).encode()
        self._make_folder(store)
        self._torn = True  # until the server confirmed the append
        try:
            store.append(self.own_file, data)
        except JournalRefused as exc:
            self.writable = False
            self._pending.clear()
            for path in list(self._own):
                self.forget(path)
            self._pending.clear()
            log.warning("%s: cannot write the journal in %s (%s): same-size saves uploaded "
                        "within one second may not reach other machines", self.name,
                        JOURNAL_DIR, exc)  # fmt: skip
            return
        self._torn = False
        self._proven = True
        self._own_bytes += len(data)
        self._pending.clear()
        while self._replaced:
            store.remove(self._replaced[-1])
            self._replaced.pop()

    def _make_folder(self, store: JournalStore) -> None:
        if self._folder_made:
            return
        for folder in (META_DIR, JOURNAL_DIR):
            store.make_folder(folder)  # exists; or the append will say why
        self._folder_made = True

    def due(self, now: float) -> bool:
        """Whether a batch should send its pending lines now rather than at its end."""
        if not self.pending:
            return False
        if not self._proven:  # learn at the first upload whether the server takes appends
            return True
        return len(self._pending) >= FLUSH_LINES or now - self._pending_since >= FLUSH_SECONDS

    def prune(self, store: JournalStore, listing: Listing, now_ns: int) -> None:
        """Remove other runs' journals that are idle and describe no listed file any more.

        Such a file no longer contributes to any tag, so removing it changes nothing a reader
        decides; ``listing`` is the latest full scan.
        """
        for entry in store.list_journals():
            name = f"{JOURNAL_DIR}/{entry.name}"
            if entry.name.startswith(self.writer) or name not in self._theirs:
                continue
            if entry.mtime_ns is None or now_ns - entry.mtime_ns < PRUNE_AFTER_NS:
                continue
            if any(_matches(v, listing.get(p)) for p, v in self._theirs[name].items()):
                continue
            store.remove(name)
            log.info("%s: removed the old journal %s", self.name, entry.name)


def _matches(version: Version, meta: FileMeta | None) -> bool:
    return meta is not None and (meta.size, meta.mtime_ns // NS) == (
        version.size,
        version.second,
    )
