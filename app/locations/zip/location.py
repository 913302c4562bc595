"""A ZIP archive as a location: ``zip:/path/archive.zip``.

The archive is watched by polling: an idle poll costs one ``stat()``, and the central directory
is parsed again only when the archive's size, mtime or inode changed (the parsed directory is
kept between batches, so our own rewrites never re-parse). All writes of one engine batch are
staged and applied by ONE rewrite at batch exit: a new archive is written next to the old one
(unchanged members copied raw, never recompressed), fsynced and renamed over it, so a crash at
any moment leaves the old or the new archive. If another program changed the archive while we
rewrote it, the rewrite is redone on top of their version; a member they changed during our
batch keeps their version.

Members with unsafe names (zip-slip: absolute, ``..``, drive letters, backslashes, NUL) are
never listed nor written anywhere, and kept untouched on rewrite, as are internal names and
directory entries. This module is POSIX-only (``pread``, ``copy_file_range``, rename over an
open file).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from app.errors import (
    FileChanged,
    FileSyncError,
    FileVanished,
    LocationUnavailable,
    WritesDropped,
)
from app.locations.base import (
    Capabilities,
    FileMeta,
    Listing,
    Location,
)
from app.locations.names import ZIP_NAMES, safe_label
from app.locations.zip.archive import ArchiveFile, Sig
from app.locations.zip.format import Entry
from app.locations.zip.members import Members, check_new_name
from app.locations.zip.parse import read_local_header
from app.locations.zip.staging import (
    Moved,
    Op,
    Staged,
    StagedOps,
    StageFile,
    meta_of,
    new_entry,
    renamed,
    rewritten_members,
)
from app.locations.zip.stream import Item, deflate_into, open_member

if TYPE_CHECKING:
    from app.locations.options import LocationOptions
    from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)

_MAX_REDO = 5
_UNCHECKED = object()


class ZipLocation(Location):
    """A ZIP archive kept like a folder. See the module docstring for the guarantees."""

    capabilities = Capabilities(
        mtime_precision_ns=2_000_000_000,
        can_set_mtime=True,
        can_rename=True,
        native_events=False,
        names=ZIP_NAMES,
    )
    kind = "zip"
    reads_only = True
    #: Leftover rewrite temp files older than this (seconds) are removed by :meth:`open`.
    stale_temp_age = 3600.0

    def __init__(self, path: Path, key: str, name: str, *, read_only: bool = False) -> None:
        self.path = path
        self._read_only = read_only
        #: Read-only and missing: listed as empty, not created.
        self._absent = False
        self._key = key
        self._name = name
        #: Number of archive rewrites done (tests and benchmarks count them).
        self.rewrites = 0
        self._lock = threading.Lock()  # guards everything below; scans come from the poller
        self._batch_lock = threading.RLock()  # one batch at a time; held by the writer thread
        self._depth = 0
        self._disk = ArchiveFile(path, name)
        self._members = Members(name)
        self._staged = StagedOps()
        self._stage_file = StageFile(self._disk.open_staging)
        self._created: Sig | None = None

    @classmethod
    def from_spec(cls, spec: LocationSpec, options: LocationOptions) -> ZipLocation:
        """Build the location for a parsed ``zip:`` spec (``options`` has nothing for ZIP)."""
        return cls(Path(spec.path), key=spec.key, name=spec.redacted, read_only=options.read_only)

    @property
    def key(self) -> str:
        """``zip:/abs/path/archive.zip``."""
        return self._key

    @property
    def name(self) -> str:
        """The spec as typed (a ZIP spec holds no password)."""
        return self._name

    @property
    def label(self) -> str:
        """The archive's file stem, reduced to ``[A-Za-z0-9_-]`` for conflict-copy names."""
        return safe_label(self.path.stem, self.kind, fill="_")

    def local_paths(self) -> tuple[Path, ...]:
        """The archive file (its rewrite temp files sit beside it, in the same folder)."""
        return (self.path,)

    # --- opening and reading ---------------------------------------------------------------

    def open(self) -> None:
        """Read the archive, creating an empty one if it is missing (never over another file)."""
        folder = self._disk.folder
        if not folder.is_dir():
            raise LocationUnavailable(
                f"the folder {folder} does not exist; create it or fix the path",
                location=self.name,
            )
        with self._lock:
            created = not os.path.exists(self.path)  # a dangling symlink: create its target
            self._absent = created and self._read_only
            if self._absent:
                return
            if created:
                self._disk.create_empty()
            self._refresh()
            self._created = self._disk.sig if created else None
        if not self._read_only:
            self._disk.remove_stale_temps(self.stale_temp_age)

    def adopt(self, has_history: bool) -> None:
        """Refuse an archive that :meth:`open` just created for a location the index knows.

        Its files are in the index, so the archive was deleted or moved: an empty new one
        would make every file look deleted. The empty archive is removed again.
        """
        with self._lock:
            created, self._created = self._created, None
            if has_history and (created is not None or self._absent):
                with contextlib.suppress(OSError):
                    if self._disk.stat_sig() == created:
                        os.unlink(self.path)
                raise LocationUnavailable(
                    "the archive is missing; restore it (FileSync will not take its files "
                    "as deleted), or remove and re-add this location to start afresh",
                    location=self.name,
                )

    def check_available(self) -> None:
        """Raise unless the archive is there and readable; one ``stat()`` if it is unchanged."""
        with self._lock:
            self._refresh()

    def close(self) -> None:
        """Close the archive. Safe to call twice."""
        with self._lock:
            if self._staged:
                log.warning("%s: %d staged changes not written", self.name, len(self._staged))
            self._discard_staging()
            self._disk.close()

    def scan(self, prefix: str = "") -> Listing:
        """List the files; the same dict object comes back while the archive is unchanged."""
        with self._lock:
            self._refresh()
            view = self._staged.view(self._members.listing, share=True)
        if not prefix:
            return view
        start = prefix.rstrip("/") + "/"
        return {p: m for p, m in view.items() if p.startswith(start)}

    def stat(self, path: str) -> FileMeta | None:
        """Return the file's meta as the archive reports it (staged changes included)."""
        with self._lock:
            self._refresh()
            return self._staged.view(self._members.listing).get(path)

    def stat_many(self, paths: Iterable[str]) -> dict[str, FileMeta | None]:
        """Like :meth:`stat` for many paths, with one ``stat()`` of the archive."""
        with self._lock:
            self._refresh()
            view = self._staged.view(self._members.listing)
            return {p: view.get(p) for p in paths}

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        """Stream a member's content, decompressed chunk by chunk and CRC-checked at the end."""
        with self._lock:
            self._refresh()
            fd, entry, data_start = self._locate(path)
        try:
            if data_start < 0:
                _, data_start = read_local_header(fd, entry)
        except FileSyncError as exc:
            os.close(fd)
            exc.location, exc.path = self.name, path
            raise
        stream = open_member(fd, entry, data_start)
        with stream:
            yield stream

    def _locate(self, path: str) -> tuple[int, Entry, int]:
        """Return a private fd, the entry and its data start (-1: read the local header)."""
        op = self._staged.ops.get(path, False)
        if isinstance(op, Staged) and self._stage_file.fd is not None:
            return os.dup(self._stage_file.fd), op.entry, op.entry.offset
        name = op.src if isinstance(op, Moved) else path
        entry = None if op is None else self._members.by_name.get(name)
        if entry is None or self._disk.fd is None:
            raise FileVanished("no such file in the archive", location=self.name, path=path)
        return os.dup(self._disk.fd), entry, -1

    # --- staging writes ----------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Stage every write of the block and apply them with one rewrite at its end.

        Changes staged before an exception are still applied (their metas were already handed
        out), then the exception propagates. Staged writes dropped because another program
        changed their member meanwhile raise :class:`WritesDropped` once the rest landed.
        """
        with self._batch_lock:
            self._depth += 1
            dropped: list[str] = []
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    dropped = self._commit()
            if dropped:
                raise WritesDropped(
                    f"{len(dropped)} files changed by another program before the archive was "
                    "rewritten; kept as they are and synced again",
                    dropped,
                    location=self.name,
                )

    def write(self, path: str, source: BinaryIO, mtime_ns: int) -> FileMeta:
        """Deflate ``source`` into the staging file now; it lands in the archive at batch end."""
        return self._write(path, source, mtime_ns, _UNCHECKED)

    def guarded_write(
        self, path: str, source: BinaryIO, mtime_ns: int, expected: FileMeta | None
    ) -> FileMeta:
        """:meth:`write` if ``path`` still holds ``expected``, checked as the write is staged.

        The commit checks again against the archive on disk: a member another program changed
        in the meantime keeps that program's version.
        """
        return self._write(path, source, mtime_ns, expected)

    def _write(self, path: str, source: BinaryIO, mtime_ns: int, expected: object) -> FileMeta:
        check_new_name(path, self.name)
        with self.batch():
            with self._lock:
                self._refresh()
                self._check_expected(path, expected)
                fd, offset = self._stage_file.end()
            blob = deflate_into(fd, offset, source)
            with self._lock:
                self._stage_file.grown(offset + blob.csize)
                self._check_expected(path, expected)
                entry = new_entry(path, blob, mtime_ns, self._members.by_name.get(path))
                self._stage(path, Staged(entry))
            return meta_of(entry)

    def delete(self, path: str) -> None:
        """Stage the removal of ``path``; a missing file is not an error."""
        self._delete(path, _UNCHECKED)

    def guarded_delete(self, path: str, expected: FileMeta | None) -> None:
        """Stage the removal of ``path`` if it still holds ``expected``."""
        self._delete(path, expected)

    def _delete(self, path: str, expected: object) -> None:
        with self.batch(), self._lock:
            self._refresh()
            self._check_expected(path, expected)
            if path in self._staged.view(self._members.listing):
                self._stage(path, None)

    def _check_expected(self, path: str, expected: object) -> None:
        if (
            expected is not _UNCHECKED
            and self._staged.view(self._members.listing).get(path) != expected
        ):
            raise FileChanged("changed while syncing; will retry", location=self.name, path=path)

    def rename(self, src: str, dst: str) -> FileMeta:
        """Stage a rename; the member's compressed bytes are reused, never recompressed."""
        check_new_name(dst, self.name)
        with self.batch(), self._lock:
            self._refresh()
            op = self._staged.ops.get(src, False)
            new: Staged | Moved
            if isinstance(op, Staged):
                new = Staged(renamed(op.entry, dst))
            elif isinstance(op, Moved):
                new = Moved(op.src, renamed(op.entry, dst))
            elif op is not None and src in self._members.by_name:
                new = Moved(src, renamed(self._members.by_name[src], dst))
            else:
                raise FileVanished("no such file in the archive", location=self.name, path=src)
            if src != dst:
                self._stage(dst, new)
                self._stage(src, None)
            return meta_of(new.entry)

    def _stage(self, path: str, op: Op) -> None:
        self._staged.stage(path, op, self._members.listing)

    def _discard_staging(self) -> None:
        self._stage_file.close()
        self._staged.clear()

    # --- the archive on disk -----------------------------------------------------------------

    def _refresh(self) -> None:
        """One ``stat()``; if the archive changed, its directory and members are read again."""
        if self._absent:
            return  # read-only and missing: empty
        if self._disk.refresh():
            self._read_members()

    def _read_members(self) -> None:
        """Take the listable members of the directory just read; staged views are stale."""
        self._members.read(self._disk.directory.entries)
        self._staged.forget_view()

    # --- the one rewrite per batch -----------------------------------------------------------

    def _commit(self) -> list[str]:
        """Apply everything staged with one rewrite; return the staged paths it dropped (another
        program changed them meanwhile, and keeps its version).

        If that fails, the staged changes stay staged (and visible to scans) and the next batch
        tries again: the engine has already recorded their metas, so dropping them would make
        files it wrote look deleted by someone else.
        """
        with self._lock:
            if not self._staged:
                return []
            for _ in range(_MAX_REDO):
                self._refresh()
                items, dropped = self._rewritten_members()
                if items is None or self._disk.replace(items):
                    if items is not None:
                        self.rewrites += 1
                        self._read_members()
                    self._discard_staging()
                    return dropped
                log.info("%s: changed by another program during a rewrite; redoing", self.name)
            raise LocationUnavailable(
                "the archive kept changing while FileSync rewrote it; will retry",
                location=self.name,
            )

    def _rewritten_members(self) -> tuple[list[Item] | None, list[str]]:
        """Drop staged operations whose names another program changed meanwhile, then lay out
        the rest; with the paths dropped."""
        assert self._disk.fd is not None
        ops, changed = self._staged.still_valid(self._members.listing)
        for path in changed:
            log.warning("%s: %s changed meanwhile; keeping that version", self.name, path)
        items = rewritten_members(
            self._disk.directory, self._members.by_name, ops, self._disk.fd, self._stage_file.fd
        )
        return items, changed
