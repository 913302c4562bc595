"""FTP and FTPS locations: a folder on a server, kept in sync by polling.

How the contract of :mod:`app.locations.base` is met over FTP:

* **Listing** uses ``MLSD`` (exact UTC times) when FEAT offers ``MLST``; otherwise ``LIST``
  lines (Unix or DOS style) plus ``MDTM`` for exact times, asked only for lines that changed
  since the previous scan, because one ``MDTM`` per file per poll would dominate a large tree.
  A listing that fails raises :class:`LocationUnavailable`; it is never taken for "empty".
  (:mod:`app.locations.ftp.scanner`)
* **Writes** are uploads to a temp name renamed into place, stamped with the time where the
  server lets us (:mod:`app.locations.ftp.writer`).
* **stat** always asks the server (:mod:`app.locations.ftp.reader`): the engine decides what
  to overwrite from it.

The location holds those three parts and the :class:`~app.locations.ftp.remote.Remote` they
share; here it connects, learns what the server offers and claims the root. The root is the
path of the spec; ``/`` (or none) means the login folder. The connection, reconnects and
backoff live in :mod:`app.locations.ftp.client`.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from app.errors import LocationUnavailable
from app.locations.base import META_DIR, TEMP_PREFIX, Capabilities, FileMeta, Listing
from app.locations.ftp.listing import ListingParseError, parse_ftp_time, parse_mdtm_reply
from app.locations.ftp.reader import FtpReader
from app.locations.ftp.remote import NS, Remote
from app.locations.ftp.scanner import FtpScanner
from app.locations.ftp.transfer import upload
from app.locations.ftp.writer import FtpWriter
from app.locations.names import FTP_NAMES
from app.locations.remote.named import SpecNamed

if TYPE_CHECKING:
    from app.locations.options import LocationOptions
    from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)

#: What we may assume before ``open()`` has read FEAT: LIST-only times, nothing settable.
CAUTIOUS = Capabilities(
    mtime_precision_ns=60 * NS,
    can_set_mtime=False,
    can_rename=True,
    native_events=False,
    names=FTP_NAMES,
)
_PROBE_TIME = "20200102030405"


class FtpLocation(SpecNamed):
    """A folder on an FTP or FTPS server (``ftp://user:pass@host/path``)."""

    kind = "ftp"
    reads_only = True

    def __init__(
        self, spec: LocationSpec, *, timeout: float = 15.0, read_only: bool = False
    ) -> None:
        self.spec = spec
        self.capabilities = CAUTIOUS
        self._remote = Remote(spec, timeout, read_only=read_only)
        self._remote.client.on_connect = self._on_connect
        self._scanner = FtpScanner(self._remote)
        self._reader = FtpReader(self._remote)
        self._writer = FtpWriter(self._remote, self._reader)

    @classmethod
    def from_spec(cls, spec: LocationSpec, options: LocationOptions) -> FtpLocation:
        """Build a location for ``spec`` (call :meth:`open` to connect)."""
        return cls(spec, timeout=options.connect_timeout, read_only=options.read_only)

    @property
    def request_count(self) -> int:
        """Control commands sent so far (for benchmarks: requests per poll)."""
        return self._remote.client.commands

    # --- connection -----------------------------------------------------------------------

    def open(self) -> None:
        """Log in, read FEAT, check the root exists and declare what this server can do."""
        remote = self._remote
        remote.client.run("login", self._setup)
        if remote.use_mfmt or remote.mdtm_set:
            how = "MFMT" if remote.use_mfmt else "MDTM-set"
        else:
            how = "none (server times are recorded)"
        listing = "MLSD" if remote.use_mlsd else remote.list_cmd + (" + MDTM" * remote.use_mdtm)
        self.capabilities = Capabilities(
            mtime_precision_ns=NS if (remote.use_mlsd or remote.use_mdtm) else 60 * NS,
            can_set_mtime=remote.use_mfmt or remote.mdtm_set,
            can_rename=True,
            native_events=False,
            names=FTP_NAMES,
        )
        log.info("%s: listing with %s, setting times with %s", self.name, listing, how)

    def close(self) -> None:
        """Close the control connection. Safe to call twice."""
        self._remote.client.close()

    def adopt(self, has_history: bool) -> None:
        """Mark the root with ``.filesync/`` on first use; refuse a known root without it.

        A server folder that was replaced or emptied (a remount, a restore) must not look like
        "the user deleted everything". Later full scans check the mark too, at no extra cost.
        """
        remote = self._remote

        def mark(ftp: ftplib.FTP) -> None:
            if any(e.name == META_DIR and e.is_dir for e, _ in remote.list_dir(ftp, "")):
                self._scanner.marked = True
                return
            if has_history:
                raise LocationUnavailable(
                    f"the {META_DIR} folder is gone from {remote.root} on the server (folder "
                    f"replaced or emptied?); its files are not deleted elsewhere. If this is the "
                    f"right folder, create an empty {META_DIR} folder in it to resume",
                    location=self.name,
                )
            if remote.read_only:
                return
            try:
                ftp.mkd(remote.abs(META_DIR))
                self._scanner.marked = True
            except ftplib.error_perm as exc:
                log.warning("%s: cannot create %s (%s); a replaced root folder will not be "
                            "noticed", self.name, META_DIR, exc)  # fmt: skip

        remote.call("checking the root folder", mark)

    def _setup(self, ftp: ftplib.FTP) -> None:
        remote = self._remote
        if self.spec.path == "/":
            remote.root = ftp.pwd()
        try:
            ftp.cwd(remote.root)
        except ftplib.error_perm as exc:
            raise LocationUnavailable(
                f"folder {remote.root} does not exist on {remote.client.address} or cannot be "
                f"read ({remote.client.scrub(str(exc))}); create it first",
                location=self.name,
            ) from None
        features = remote.client.features
        remote.use_mlsd = "MLST" in features
        remote.use_mdtm = "MDTM" in features
        remote.use_mfmt = "MFMT" in features
        if not remote.use_mlsd:
            remote.list_cmd = "LIST -a" if self._accepts_list_a(ftp) else "LIST"
        probe = not (remote.use_mfmt or remote.read_only) and remote.use_mdtm  # it uploads a file
        remote.mdtm_set = probe and self._probe_mdtm_set(ftp)

    def _on_connect(self, ftp: ftplib.FTP) -> None:
        """Ask for just the MLSD facts we read (less to send and parse on every poll)."""
        if "MLST" in self._remote.client.features:
            with contextlib.suppress(ftplib.error_perm, ftplib.error_temp):
                ftp.sendcmd("OPTS MLST type;size;modify;unique;")

    def _accepts_list_a(self, ftp: ftplib.FTP) -> bool:
        """vsftpd hides dot-files from LIST unless given ``-a``; pyftpdlib takes it for a name."""
        try:
            self._remote.read_lines(ftp, f"LIST -a {self._remote.abs('')}")
        except ftplib.error_perm:
            return False
        return True

    def _probe_mdtm_set(self, ftp: ftplib.FTP) -> bool:
        """Return True if ``MDTM YYYYMMDDHHMMSS path`` really sets a time (vsftpd does)."""
        probe = self._remote.abs(f"{TEMP_PREFIX}probe-{uuid.uuid4().hex[:12]}")
        try:
            upload(ftp, probe, io.BytesIO(b""), self._writer.buffer)
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

    # --- reading: the scanner and the reader ------------------------------------------------

    def scan(self, prefix: str = "") -> Listing:
        """Walk the tree below ``prefix`` with one MLSD/LIST per folder."""
        return self._scanner.scan(prefix)

    def links(self) -> frozenset[str]:
        """Symbolic links the scans met on the server (see ``Location.links``)."""
        return self._scanner.links()

    def stat(self, path: str) -> FileMeta | None:
        """Ask the server now for ``path``'s size and time (None if it is not a file)."""
        return self._reader.stat(path)

    def stat_many(self, paths: Iterable[str]) -> dict[str, FileMeta | None]:
        """Ask the server now, one listing per folder (``MLST`` when a folder has one path)."""
        return self._reader.stat_many(paths)

    def open_read(self, path: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Stream ``path`` from the server; see :meth:`FtpReader.open_read`."""
        return self._reader.open_read(path)

    # --- writing: the writer ----------------------------------------------------------------

    def write(self, path: str, source: BinaryIO, mtime_ns: int) -> FileMeta:
        """Upload to a temporary name beside ``path``, rename it into place, stamp the time.

        A broken connection is retried once from the start if ``source`` can seek back;
        a failing ``source`` leaves nothing behind and its error is re-raised unchanged.
        """
        return self._writer.write(path, source, mtime_ns, check=False, expected=None)

    def guarded_write(
        self, path: str, source: BinaryIO, mtime_ns: int, expected: FileMeta | None
    ) -> FileMeta:
        """Like :meth:`write`, checking ``expected`` after the upload, just before the rename.

        The upload may take minutes; checking then (one ``MLST``) leaves the smallest window
        for a save on the server to be overwritten.
        """
        return self._writer.write(path, source, mtime_ns, check=True, expected=expected)

    def delete(self, path: str) -> None:
        """DELE ``path`` and RMD the folders it leaves empty; a missing file is fine."""
        self._writer.delete(path)

    def rename(self, src: str, dst: str) -> FileMeta:
        """RNFR/RNTO on the server (no copy); missing folders of ``dst`` are created."""
        return self._writer.rename(src, dst)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the journal lines of one engine batch into one append."""
        with self._writer.batch():
            yield

    def housekeeping(self) -> None:
        """Remove journals of FileSync runs that ended long ago (see ``remote.hubjournal``)."""
        self._writer.prune_journal(self._scanner.last_listing)
