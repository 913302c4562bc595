"""FTP and FTPS locations: a folder on a server, kept in sync by polling.

How the contract of :mod:`app.locations.base` is met over FTP:

* **Listing** uses ``MLSD`` (exact UTC times) when FEAT offers ``MLST``; otherwise ``LIST``
  lines (Unix or DOS style) plus ``MDTM`` for exact times, asked only for lines that changed
  since the previous scan, because one ``MDTM`` per file per poll would dominate a large tree.
  A listing that fails raises :class:`LocationUnavailable`; it is never taken for "empty".
* **Writes** go to a ``.filesync-tmp-*`` name in the target folder and are renamed onto the
  real name, so no one ever sees half a file. The time is set with ``MFMT`` or, on servers
  such as vsftpd, the ``MDTM YYYYMMDDHHMMSS path`` form (probed once at ``open()``). Where no
  time can be set, ``write()`` returns the server's own time, which the engine records, so our
  upload never looks like a newer remote edit.
* **stat** always asks the server (one listing per folder, ``MLST`` for a single file): the
  engine decides what to overwrite from it.

The root is the path of the spec; ``/`` (or none) means the login folder. The connection,
reconnects and backoff live in :mod:`app.locations.ftp.client`.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import logging
import posixpath
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from app.errors import FileChanged, FileSyncError, FileVanished, LocationUnavailable
from app.locations.base import (
    META_DIR,
    TEMP_PREFIX,
    Capabilities,
    FileMeta,
    Listing,
    Location,
)
from app.locations.ftp.client import FtpClient, is_not_found
from app.locations.ftp.journal import HubJournal
from app.locations.ftp.listing import (
    ListingParseError,
    format_ftp_time,
    parse_ftp_time,
    parse_mdtm_reply,
    parse_mfmt_reply,
)
from app.locations.ftp.reader import FtpReadOps, mlst_entry
from app.locations.ftp.transfer import SourceFailed, upload
from app.locations.names import FTP_NAMES, parent_folders, safe_label

if TYPE_CHECKING:
    from app.locations.options import LocationOptions
    from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)

NS = 1_000_000_000
#: What we may assume before ``open()`` has read FEAT: LIST-only times, nothing settable.
CAUTIOUS = Capabilities(
    mtime_precision_ns=60 * NS,
    can_set_mtime=False,
    can_rename=True,
    native_events=False,
    names=FTP_NAMES,
)
_PROBE_TIME = "20200102030405"
#: Bytes per read and send while uploading: large enough for full-speed sends, small enough
#: to stay clear of the allocator's mmap threshold.
UPLOAD_CHUNK = 256 * 1024


class FtpLocation(FtpReadOps, Location):
    """A folder on an FTP or FTPS server (``ftp://user:pass@host/path``)."""

    kind = "ftp"
    reads_only = True

    def __init__(
        self, spec: LocationSpec, *, timeout: float = 15.0, read_only: bool = False
    ) -> None:
        self.spec = spec
        self._read_only = read_only
        self.capabilities = CAUTIOUS
        self._client = FtpClient(spec, timeout)
        self._client.on_connect = self._on_connect
        self._root = spec.path
        self._use_mlsd = False
        self._use_mdtm = False
        self._use_mfmt = False
        self._mdtm_set = False
        self._list_cmd = "LIST"
        #: Folders (relative) known to exist, so a write sends MKD only for new ones.
        self._known_dirs: set[str] = {""}
        #: LIST mode: path -> (LIST line, MDTM time) from the last scan.
        self._mdtm_cache: dict[str, tuple[str, int]] = {}
        #: Upload buffer, reused (uploads are serialised by the connection lock).
        self._buffer = bytearray(UPLOAD_CHUNK)
        #: True once the root is known to hold ``.filesync/``: full scans then insist on it.
        self._marked = False
        #: Exact versions of our uploads, and of other FileSyncs' (see ``ftp.journal``).
        self._journal = HubJournal(self.name, self._abs)
        self._batching = 0
        #: The latest full scan (housekeeping keeps the journal entries it still matches).
        self._last_listing: Listing | None = None
        self._warned_names: set[str] = set()
        self._links: frozenset[str] = frozenset()

    @classmethod
    def from_spec(cls, spec: LocationSpec, options: LocationOptions) -> FtpLocation:
        """Build a location for ``spec`` (call :meth:`open` to connect)."""
        return cls(spec, timeout=options.connect_timeout, read_only=options.read_only)

    @property
    def key(self) -> str:
        """``ftp://user@host:port/path`` (never the password)."""
        return self.spec.key

    @property
    def name(self) -> str:
        """The spec as typed, password shown as ``***``."""
        return self.spec.redacted

    @property
    def label(self) -> str:
        """The host name, reduced to characters safe in a file name."""
        return safe_label(self.spec.host, self.kind)

    @property
    def request_count(self) -> int:
        """Control commands sent so far (for benchmarks: requests per poll)."""
        return self._client.commands

    # --- connection -----------------------------------------------------------------------

    def open(self) -> None:
        """Log in, read FEAT, check the root exists and declare what this server can do."""
        self._client.run("login", self._setup)
        if self._use_mfmt or self._mdtm_set:
            how = "MFMT" if self._use_mfmt else "MDTM-set"
        else:
            how = "none (server times are recorded)"
        listing = "MLSD" if self._use_mlsd else self._list_cmd + (" + MDTM" * self._use_mdtm)
        self.capabilities = Capabilities(
            mtime_precision_ns=NS if (self._use_mlsd or self._use_mdtm) else 60 * NS,
            can_set_mtime=self._use_mfmt or self._mdtm_set,
            can_rename=True,
            native_events=False,
            names=FTP_NAMES,
        )
        log.info("%s: listing with %s, setting times with %s", self.name, listing, how)

    def close(self) -> None:
        """Close the control connection. Safe to call twice."""
        self._client.close()

    def adopt(self, has_history: bool) -> None:
        """Mark the root with ``.filesync/`` on first use; refuse a known root without it.

        A server folder that was replaced or emptied (a remount, a restore) must not look like
        "the user deleted everything". Later full scans check the mark too, at no extra cost.
        """

        def mark(ftp: ftplib.FTP) -> None:
            if any(e.name == META_DIR and e.is_dir for e, _ in self._list_dir(ftp, "")):
                self._marked = True
                return
            if has_history:
                raise LocationUnavailable(
                    f"the {META_DIR} folder is gone from {self._root} on the server (folder "
                    f"replaced or emptied?); its files are not deleted elsewhere. If this is the "
                    f"right folder, create an empty {META_DIR} folder in it to resume",
                    location=self.name,
                )
            if self._read_only:
                return
            try:
                ftp.mkd(self._abs(META_DIR))
                self._marked = True
            except ftplib.error_perm as exc:
                log.warning("%s: cannot create %s (%s); a replaced root folder will not be "
                            "noticed", self.name, META_DIR, exc)  # fmt: skip

        self._call("checking the root folder", mark)

    def _setup(self, ftp: ftplib.FTP) -> None:
        if self.spec.path == "/":
            self._root = ftp.pwd()
        try:
            ftp.cwd(self._root)
        except ftplib.error_perm as exc:
            raise LocationUnavailable(
                f"folder {self._root} does not exist on {self._client.address} or cannot be "
                f"read ({self._client.scrub(str(exc))}); create it first",
                location=self.name,
            ) from None
        features = self._client.features
        self._use_mlsd = "MLST" in features
        self._use_mdtm = "MDTM" in features
        self._use_mfmt = "MFMT" in features
        if not self._use_mlsd:
            self._list_cmd = "LIST -a" if self._accepts_list_a(ftp) else "LIST"
        probe = not (self._use_mfmt or self._read_only) and self._use_mdtm  # it uploads a file
        self._mdtm_set = probe and self._probe_mdtm_set(ftp)

    def _on_connect(self, ftp: ftplib.FTP) -> None:
        """Ask for just the MLSD facts we read (less to send and parse on every poll)."""
        if "MLST" in self._client.features:
            with contextlib.suppress(ftplib.error_perm, ftplib.error_temp):
                ftp.sendcmd("OPTS MLST type;size;modify;unique;")

    def _accepts_list_a(self, ftp: ftplib.FTP) -> bool:
        """vsftpd hides dot-files from LIST unless given ``-a``; pyftpdlib takes it for a name."""
        try:
            self._read_lines(ftp, f"LIST -a {self._abs('')}")
        except ftplib.error_perm:
            return False
        return True

    def _probe_mdtm_set(self, ftp: ftplib.FTP) -> bool:
        """Return True if ``MDTM YYYYMMDDHHMMSS path`` really sets a time (vsftpd does)."""
        probe = self._abs(f"{TEMP_PREFIX}probe-{uuid.uuid4().hex[:12]}")
        try:
            upload(ftp, probe, io.BytesIO(b""), self._buffer)
        except ftplib.error_perm:
            return False
        try:
            ftp.sendcmd(f"MDTM {_PROBE_TIME} {probe}")
            return parse_mdtm_reply(ftp.sendcmd(f"MDTM {probe}")) == parse_ftp_time(_PROBE_TIME)
        except (ftplib.error_perm, ListingParseError):
            return False
        finally:
            with contextlib.suppress(ftplib.error_perm):
                ftp.delete(probe)

    # --- writing --------------------------------------------------------------------------

    def write(self, path: str, source: BinaryIO, mtime_ns: int) -> FileMeta:
        """Upload to a temporary name beside ``path``, rename it into place, stamp the time.

        A broken connection is retried once from the start if ``source`` can seek back;
        a failing ``source`` leaves nothing behind and its error is re-raised unchanged.
        """
        return self._write(path, source, mtime_ns, check=False, expected=None)

    def guarded_write(
        self, path: str, source: BinaryIO, mtime_ns: int, expected: FileMeta | None
    ) -> FileMeta:
        """Like :meth:`write`, checking ``expected`` after the upload, just before the rename.

        The upload may take minutes; checking then (one ``MLST``) leaves the smallest window
        for a save on the server to be overwritten.
        """
        return self._write(path, source, mtime_ns, check=True, expected=expected)

    def _write(
        self, path: str, source: BinaryIO, mtime_ns: int, check: bool, expected: FileMeta | None
    ) -> FileMeta:
        self._check(path)
        folder = posixpath.dirname(path)
        temp = posixpath.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex[:16]}")
        start = source.tell() if source.seekable() else None
        attempts = 0

        def put(ftp: ftplib.FTP) -> FileMeta:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                if start is None:
                    raise LocationUnavailable(
                        "connection lost during the upload", location=self.name, path=path
                    )
                source.seek(start)
            size = self._upload_new(ftp, folder, temp, source)
            try:
                if check and self._stat_one(ftp, path) != expected:
                    raise FileChanged(
                        "changed on the server while syncing; will retry",
                        location=self.name,
                        path=path,
                    )
                meta = self._commit(ftp, temp, path, mtime_ns, size)
            except BaseException:
                with contextlib.suppress(ftplib.Error, OSError, EOFError):
                    ftp.delete(self._abs(temp))
                raise
            # A same-size replacement within the same second lists exactly like the file it
            # replaced: only its journal line tells, so that line is sent at once.
            alike = expected is not None and (expected.size, expected.mtime_ns // NS) == (
                meta.size,
                meta.mtime_ns // NS,
            )
            return self._journaled(ftp, path, meta, urgent=alike)

        try:
            return self._call(f"upload of {path}", put, path)
        except SourceFailed as exc:
            with contextlib.suppress(ftplib.Error, LocationUnavailable):
                self._call(f"cleanup of {temp}", lambda ftp: ftp.delete(self._abs(temp)))
            raise exc.cause from None

    def _upload_new(self, ftp: ftplib.FTP, folder: str, temp: str, source: BinaryIO) -> int:
        """STOR ``temp``, creating its folders; a folder deleted behind our back is remade."""
        created = self._make_dirs(ftp, folder)
        try:
            return upload(ftp, self._abs(temp), source, self._buffer)
        except ftplib.error_perm as exc:
            if created or not is_not_found(exc):
                raise
        self._known_dirs.difference_update(_ancestors(folder))
        self._make_dirs(ftp, folder)
        return upload(ftp, self._abs(temp), source, self._buffer)

    def _make_dirs(self, ftp: ftplib.FTP, folder: str) -> bool:
        """MKD each folder of ``folder`` not known to exist; return True if any was sent."""
        if folder in self._known_dirs:
            return False
        for parent in reversed(_ancestors(folder)):
            if parent not in self._known_dirs:
                with contextlib.suppress(ftplib.error_perm):  # exists; or STOR will say why
                    ftp.mkd(self._abs(parent))
                self._known_dirs.add(parent)
        return True

    def _move(self, ftp: ftplib.FTP, src: str, dst: str) -> None:
        """RNFR/RNTO ``src`` onto ``dst``; if the server will not overwrite, delete ``dst``."""
        try:
            ftp.sendcmd(f"RNFR {self._abs(src)}")
        except ftplib.error_perm as exc:
            if is_not_found(exc):
                raise FileVanished(
                    "the file is gone from the server", location=self.name, path=src
                ) from None
            raise
        try:
            ftp.voidcmd(f"RNTO {self._abs(dst)}")
        except ftplib.error_perm:
            log.debug("%s: RNTO onto existing %s refused; deleting it first", self.name, dst)
            with contextlib.suppress(ftplib.error_perm):
                ftp.delete(self._abs(dst))
            ftp.sendcmd(f"RNFR {self._abs(src)}")
            ftp.voidcmd(f"RNTO {self._abs(dst)}")

    def _commit(self, ftp: ftplib.FTP, temp: str, path: str, mtime_ns: int, size: int) -> FileMeta:
        """Stamp the uploaded temp file and rename it into place, in one pipelined exchange.

        The time goes on the temp file first (a rename keeps it), so a failure part-way never
        touches the file already at ``path``. With MLSD, an ``MLST`` of the result rides along
        for the listing's own tag (its ``unique``).
        """
        stamp = format_ftp_time(mtime_ns)
        commands = [f"RNFR {self._abs(temp)}", f"RNTO {self._abs(path)}"]
        if self._use_mfmt:
            commands.insert(0, f"MFMT {stamp} {self._abs(temp)}")
        elif self._mdtm_set:
            commands.insert(0, f"MDTM {stamp} {self._abs(temp)}")
        stamping = len(commands) == 3
        if self._use_mlsd:
            commands.append(f"MLST {self._abs(path)}")
        replies = self._client.pipeline(ftp, commands)
        stamped = replies[0] if stamping else None
        rnfr, rnto = replies[int(stamping) : int(stamping) + 2]
        listed = replies[-1] if self._use_mlsd else None
        if isinstance(rnfr, ftplib.Error):
            raise rnfr
        if isinstance(rnto, ftplib.Error):
            self._move(ftp, temp, path)  # the server will not overwrite: delete, then rename
            listed = None  # that MLST saw the file before
        return self._stamped_meta(ftp, path, stamp, size, stamped, listed=listed)

    def _stamped_meta(
        self,
        ftp: ftplib.FTP,
        path: str,
        stamp: str,
        size: int,
        reply: str | ftplib.Error | None,
        *,
        listed: str | ftplib.Error | None,
    ) -> FileMeta:
        """Return the meta a scan will report for the file just written, tagged with the
        listing's own tag only (the journal adds its version).

        That is the time we set when the listing is exact (MLSD/MDTM) and setting worked;
        otherwise whatever the server lists now (its own clock, or LIST minutes).
        """
        tag: int | None = 0
        if self._use_mlsd:
            tag = None
            with contextlib.suppress(ListingParseError):
                entry = mlst_entry(listed) if isinstance(listed, str) else None
                tag = entry.tag if entry is not None and entry.is_file else None
        if isinstance(reply, ftplib.Error):
            log.warning("%s: could not set the time of %s: %s", self.name, path, reply)
        elif reply is not None and (self._use_mlsd or self._use_mdtm) and tag is not None:
            if not self._use_mfmt:
                return FileMeta(size, parse_ftp_time(stamp), tag)
            with contextlib.suppress(ListingParseError):
                return FileMeta(size, parse_mfmt_reply(reply), tag)
        meta = self._stat_one(ftp, path, journal=False)
        if meta is None:
            raise FileVanished(
                "the file vanished right after upload", location=self.name, path=path
            )
        return meta

    def delete(self, path: str) -> None:
        """DELE ``path`` and RMD the folders it leaves empty; a missing file is fine."""
        self._check(path)

        def remove(ftp: ftplib.FTP) -> None:
            try:
                ftp.delete(self._abs(path))
            except ftplib.error_perm as exc:
                if not is_not_found(exc) or self._stat_one(ftp, path) is not None:
                    raise
            self._prune(ftp, posixpath.dirname(path))
            self._journal.forget(path)
            self._send_journal(ftp)

        self._call(f"delete of {path}", remove, path)

    def _prune(self, ftp: ftplib.FTP, folder: str) -> None:
        """RMD ``folder`` and its parents while empty (the server refuses non-empty ones)."""
        while folder:
            try:
                ftp.rmd(self._abs(folder))
            except ftplib.error_perm:
                return
            self._known_dirs.discard(folder)
            folder = posixpath.dirname(folder)

    def rename(self, src: str, dst: str) -> FileMeta:
        """RNFR/RNTO on the server (no copy); missing folders of ``dst`` are created."""
        self._check(src)
        self._check(dst)

        def move(ftp: ftplib.FTP) -> FileMeta:
            self._make_dirs(ftp, posixpath.dirname(dst))
            self._move(ftp, src, dst)
            self._prune(ftp, posixpath.dirname(src))
            meta = self._stat_one(ftp, dst, journal=False)
            if meta is None:
                raise FileVanished("the renamed file is gone", location=self.name, path=dst)
            self._journal.forget(src)
            return self._journaled(ftp, dst, meta)

        return self._call(f"rename of {src}", move, src)

    # --- the hub journal --------------------------------------------------------------------

    def _journaled(
        self, ftp: ftplib.FTP, path: str, meta: FileMeta, urgent: bool = False
    ) -> FileMeta:
        """Record our upload of ``path`` in the hub journal; return its meta with the new tag
        (``meta`` as it was if the server turned out not to take the journal)."""
        tagged = self._journal.record(path, meta)
        self._send_journal(ftp, urgent)
        return tagged if self._journal.writable else meta

    def _send_journal(self, ftp: ftplib.FTP, urgent: bool = False) -> None:
        """Send pending journal lines now, unless a batch is open (it sends them at its end or
        when enough have gathered) and nothing is ``urgent``."""
        if urgent or not self._batching or self._journal.due(time.monotonic()):
            self._flush_journal(ftp)

    def _flush_journal(self, ftp: ftplib.FTP) -> None:
        """A failed send stays pending (the next batch or poll sends it); the write stands."""
        try:
            self._journal.flush(ftp)
        except ftplib.all_errors as exc:
            log.info("%s: journal not written yet (%s); will retry", self.name, exc)

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
                    self._client.run("writing the journal", self._flush_journal)

    def housekeeping(self) -> None:
        """Remove journals of FileSync runs that ended long ago (see ``ftp.journal``)."""
        now, listing = time.time_ns(), self._last_listing
        if listing is None:
            return
        with contextlib.suppress(FileSyncError):
            self._call(
                "pruning the journal",
                lambda ftp: self._journal.prune(ftp, self._list_dir, listing, now),
            )


def _ancestors(folder: str) -> list[str]:
    """``"a/b/c"`` -> ``["a/b/c", "a/b", "a"]`` (``""`` for the root has none)."""
    return [folder, *parent_folders(folder)] if folder else []
