"""S3-compatible object storage: the objects under a bucket prefix, kept in sync by polling.

How the contract of :mod:`app.locations.base` is met on S3:

* **Keys** under the prefix are relative paths; folders are only key prefixes, so there are
  no empty folders and deleting a file leaves nothing to clean up.
* **Times** are the user metadata ``mtime`` (as rclone writes it, so buckets written by either
  read alike); objects without it use ``LastModified``. The tag is the ETag.
* **Listing** is ``ListObjectsV2``, page by page; an unchanged object costs no more (see
  ``objects.MtimeCache``). A listing that fails raises LocationUnavailable, never "empty".
  ``stat`` lists the one key too, so it reports exactly what a scan does (``reader.py``).
  Given a cache folder, the times learned are kept there, so a restart HEADs only the objects
  that changed meanwhile (``saved.py``).
* **Writes** (``writer.py``) are one PUT, or a multipart upload for large files
  (``upload.py``): S3 shows an object only once it is whole. In a batch, small files upload
  in parallel and land by the batch's end (``pending.py``). Guarded writes use
  ``If-Match``/``If-None-Match`` where the server honours them (probed once at ``open``;
  declared as ``Capabilities.checks_on_write``) and otherwise check the object just before
  the PUT (and before completing a multipart).
* **Conflict copies** are made by the server (``CopyObject``, only from the planned version;
  ``copyaside.py``): the loser's bytes never travel through FileSync.
* **Deletes** made in a batch go out together as ``DeleteObjects`` (1,000 keys a request) at
  the batch's end. **Renames** are not in place: the kind declares ``can_rename=False``, so the
  engine copies and deletes.
* The root is marked with a ``.filesync/root`` object; a known root without it is unavailable.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from app.errors import LocationUnavailable
from app.locations.base import (
    META_DIR,
    Capabilities,
    FileMeta,
    Listing,
    WriteJob,
    WriteOutcome,
)
from app.locations.names import safe_label
from app.locations.remote.named import SpecNamed
from app.locations.s3.client import S3Connection
from app.locations.s3.copyaside import ServerCopies
from app.locations.s3.pending import PendingPuts
from app.locations.s3.reader import MARKER, S3_NAMES, S3Reader
from app.locations.s3.saved import SavedTimes, times_file
from app.locations.s3.upload import abort_abandoned
from app.locations.s3.writer import S3Writer

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

    from app.locations.options import LocationOptions
    from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)

MS = 1_000_000
#: A multipart upload started longer ago than this is taken as abandoned (a crash).
ABANDONED_AFTER_S = 86400.0


class S3Location(SpecNamed):
    """The objects under ``s3://bucket/prefix`` on AWS S3 or any S3-compatible server."""

    kind = "s3"

    def __init__(
        self, spec: LocationSpec, *, timeout: float = 15.0, cache_dir: Path | None = None
    ) -> None:
        self.spec = spec
        prefix = spec.path.strip("/")
        self._base = f"{prefix}/" if prefix else ""
        self._conn = S3Connection(spec, self.name, timeout)
        self._conn.prefix_hint = self._base
        self.capabilities = self._declare(checks_on_write=False)
        self._probed = False
        self._pending = PendingPuts(safe_label(spec.host, "s3"))
        saved = None
        if cache_dir is not None:
            saved = SavedTimes(times_file(cache_dir, self.key), self.key, self.name)
        self._reader = S3Reader(self._conn, self._base, self.name, self._pending, saved)
        self._writer = S3Writer(self._conn, self._base, self.name, self._reader, self._pending)
        self._copies = ServerCopies(
            self._conn,
            self._base,
            self.name,
            self._reader,
            self._pending,
            conditional=lambda: self._writer.conditional,
        )

    @staticmethod
    def _declare(checks_on_write: bool) -> Capabilities:
        return Capabilities(
            mtime_precision_ns=MS,
            can_set_mtime=True,
            can_rename=False,
            native_events=False,
            names=S3_NAMES,
            checks_on_write=checks_on_write,
            batched_writes=True,
            can_copy_aside=True,
        )

    @classmethod
    def from_spec(cls, spec: LocationSpec, options: LocationOptions) -> S3Location:
        """Build a location for ``spec`` (call :meth:`open` to connect); a look that must change
        nothing (``read_only``) leaves the saved times alone."""
        cache_dir = None if options.read_only else options.cache_dir
        return cls(spec, timeout=options.connect_timeout, cache_dir=cache_dir)

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far (for tests and benchmarks: requests per poll)."""
        return self._conn.requests

    @property
    def head_count(self) -> int:
        """HEAD requests for objects sent so far (for tests and benchmarks: restart cost)."""
        return self._conn.heads

    @property
    def clock_offset_s(self) -> float:
        """The server's clock minus this computer's, measured at :meth:`open`."""
        return self._conn.clock_offset_s

    # --- connection -----------------------------------------------------------------------

    def open(self) -> None:
        """Check the bucket answers, measure the clock, and probe conditional writes once;
        the first time, take up the object times an earlier run saved."""
        self._conn.connect()
        self._reader.restore_times()
        if not self._probed:
            honoured = self._conn.honours_conditions(
                f"{self._base}{META_DIR}/probe-{uuid.uuid4().hex[:12]}"
            )
            self._probed = True
            self.capabilities = self._declare(checks_on_write=honoured)
            self._writer.conditional = honoured
            how = "If-Match/If-None-Match" if honoured else "a check just before each PUT"
            log.info("%s: guarded writes by %s", self.name, how)

    def close(self) -> None:
        """Let uploads still in flight end (a batch always waits for them; this is a backstop),
        and save what was learned since the last full scan."""
        with contextlib.suppress(Exception):
            self._pending.finish()
        self._conn.close()
        self._reader.save_times()

    def adopt(self, has_history: bool) -> None:
        """Mark the root with a ``.filesync/root`` object; refuse a known root without it."""
        bucket, marker = self._conn.bucket, self._base + MARKER

        def mark(c: S3Client) -> None:
            found = self._conn.list_objects(c, Bucket=bucket, Prefix=f"{self._base}{META_DIR}/",
                                            MaxKeys=1)  # fmt: skip
            if found.get("KeyCount", 0):
                self._reader.marked = True
                return
            if has_history:
                raise self._reader.marker_gone()
            c.put_object(Bucket=bucket, Key=marker, Body=b"")
            self._reader.marked = True

        self._reader.call("checking the root", mark)

    # --- reading (S3Reader) ---------------------------------------------------------------

    def scan(self, prefix: str = "") -> Listing:
        """Every object under ``prefix`` (a folder path or ``""``); see :class:`S3Reader`."""
        return self._reader.scan(prefix)

    def stat(self, path: str) -> FileMeta | None:
        """``path`` as a scan would report it, or None."""
        return self._reader.stat(path)

    def open_read(self, path: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Stream the object's body; a missing object is :class:`FileVanished`."""
        return self._reader.open_read(path)

    # --- writing (S3Writer) ---------------------------------------------------------------

    def write(self, path: str, source: BinaryIO, mtime_ns: int) -> FileMeta:
        """Upload ``source`` to ``path`` stamped ``mtime_ns`` (whatever is there is replaced)."""
        return self._writer.write(path, source, mtime_ns)

    def guarded_write(
        self, path: str, source: BinaryIO, mtime_ns: int, expected: FileMeta | None
    ) -> FileMeta:
        """Upload only if ``path`` still holds ``expected``: checked by the server itself where
        it honours conditions, else just before the PUT (and before completing a multipart)."""
        return self._writer.guarded_write(path, source, mtime_ns, expected)

    def write_many(
        self, jobs: Sequence[WriteJob], *, parallel_reads: bool = False
    ) -> list[WriteOutcome]:
        """Guarded writes of a group; one outcome per job, in order (see :class:`S3Writer`)."""
        return self._writer.write_many(jobs)

    def delete(self, path: str) -> None:
        """Delete ``path`` (in a batch: with the batch's ``DeleteObjects``). Missing is fine."""
        self._writer.delete(path)

    def guarded_delete(self, path: str, expected: FileMeta | None) -> None:
        """Delete ``path`` only if it still holds ``expected`` (a HEAD just before)."""
        self._writer.guarded_delete(path, expected)

    def copy_aside(self, src: str, dst: str, expected: FileMeta) -> FileMeta:
        """Have the server copy ``src`` to the new name ``dst``, only if it is ``expected``
        (a conflict's loser, kept aside; see :mod:`.copyaside`)."""
        return self._copies.copy(src, dst, expected)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Collect the batch's deletes and send them as few ``DeleteObjects`` at its end, after
        its uploads landed; raise the first failure of either."""
        with self._writer.batch():
            yield

    def housekeeping(self) -> None:
        """Abort multipart uploads under our prefix abandoned long ago (a crash mid-upload)."""
        with contextlib.suppress(LocationUnavailable):
            aborted = self._reader.call(
                "cleaning up abandoned uploads",
                lambda c: abort_abandoned(c, self._conn.bucket, self._base, ABANDONED_AFTER_S),
            )
            if aborted:
                log.info("%s: aborted %d abandoned multipart uploads", self.name, aborted)
