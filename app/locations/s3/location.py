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
* **Writes** are one PUT, or a multipart upload for large files (``upload.py``): S3 shows an
  object only once it is whole. In a batch, small files upload in parallel and land by the
  batch's end (``pending.py``). Guarded writes use ``If-Match``/``If-None-Match`` where the
  server honours them (probed once at ``open``; declared as ``Capabilities.checks_on_write``)
  and otherwise check the object just before the PUT (and before completing a multipart).
* **Deletes** made in a batch go out together as ``DeleteObjects`` (1,000 keys a request) at
  the batch's end. **Renames** are not in place: the kind declares ``can_rename=False``, so the
  engine copies and deletes.
* The root is marked with a ``.filesync/root`` object; a known root without it is unavailable.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import botocore.exceptions as bex

from app.errors import FileChanged, FileSyncError, LocationUnavailable, TargetFailed
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
from app.locations.s3.client import S3Connection, is_not_found, is_precondition_failed
from app.locations.s3.group import current_objects
from app.locations.s3.objects import (
    Listed,
    etag_of,
    format_mtime,
    tag_of,
)
from app.locations.s3.pending import THREADS, PendingPuts
from app.locations.s3.reader import MARKER, S3_NAMES, S3Reader
from app.locations.s3.saved import SavedTimes, times_file
from app.locations.s3.upload import PART_SIZE, abort_abandoned, read_part, upload

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

    from app.locations.options import LocationOptions
    from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)

MS = 1_000_000
#: DeleteObjects takes at most this many keys per request.
DELETE_BATCH = 1000
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
        self._lock = threading.Lock()
        self._probed = False
        self._batching = 0
        self._deletes: list[str] = []
        self._pending = PendingPuts(safe_label(spec.host, "s3"))
        saved = None
        if cache_dir is not None:
            saved = SavedTimes(times_file(cache_dir, self.key), self.key, self.name)
        self._reader = S3Reader(self._conn, self._base, self.name, self._pending, saved)

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
            how = "If-Match/If-None-Match" if honoured else "a check just before each PUT"
            log.info("%s: guarded writes by %s", self.name, how)

    def close(self) -> None:
        """Let uploads still in flight end (a batch always waits for them; this is a backstop),
        and save what was learned since the last full scan."""
        with contextlib.suppress(Exception):
            self._pending.finish()
        self._reader.save_times()

    def adopt(self, has_history: bool) -> None:
        """Mark the root with a ``.filesync/root`` object; refuse a known root without it."""
        bucket, marker = self._conn.bucket, self._base + MARKER

        def mark(c: S3Client) -> None:
            found = c.list_objects_v2(Bucket=bucket, Prefix=f"{self._base}{META_DIR}/", MaxKeys=1)
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

    # --- writing --------------------------------------------------------------------------

    def write(self, path: str, source: BinaryIO, mtime_ns: int) -> FileMeta:
        """Upload ``source`` to ``path`` stamped ``mtime_ns`` (whatever is there is replaced)."""
        return self._put(path, source, mtime_ns, guarded=False, expected=None)

    def guarded_write(
        self, path: str, source: BinaryIO, mtime_ns: int, expected: FileMeta | None
    ) -> FileMeta:
        """Upload only if ``path`` still holds ``expected``: checked by the server itself where
        it honours conditions, else just before the PUT (and before completing a multipart)."""
        return self._put(path, source, mtime_ns, guarded=True, expected=expected)

    def _put(
        self,
        path: str,
        source: BinaryIO,
        mtime_ns: int,
        *,
        guarded: bool,
        expected: FileMeta | None,
    ) -> FileMeta:
        """Upload; in a batch, a small file goes to :class:`PendingPuts` and lands by its end
        (the tag, the ETag, is then learned from the next listing)."""
        key, unclaimed = self._claim(path)
        with self._lock:
            batching = self._batching > 0
        check = guarded and unclaimed
        first = read_part(source)
        if batching and len(first) < PART_SIZE:
            size = len(first)
            self._pending.submit(
                path,
                size,
                lambda: self._send(
                    path, key, mtime_ns, first, None, check=check, expected=expected
                ),
            )
            return FileMeta(size, mtime_ns, 0)
        return self._send(path, key, mtime_ns, first, source, check=check, expected=expected)

    def _claim(self, path: str) -> tuple[str, bool]:
        """``path``'s key, once its earlier upload ended; False if this batch deleted it
        earlier (the write replaces that delete, and there is nothing to guard)."""
        key = self._base + self._reader.check_name(path)
        self._pending.wait_for(path)
        with self._lock:
            replacing = key in self._deletes
            if replacing:
                self._deletes.remove(key)
        return key, not replacing

    def write_many(
        self, jobs: Sequence[WriteJob], *, parallel_reads: bool = False
    ) -> list[WriteOutcome]:
        """Guarded writes of a group; one outcome per job, in order.

        A file of a part or more streams alone with its own check. The small ones are read
        whole, checked together and then PUT in parallel: where the server ignores conditions,
        by listing the group's folders just before the PUTs (:mod:`.group`) instead of a
        ``HEAD`` per file; where it honours them, each PUT carries its condition.
        """
        outcomes: dict[int, WriteOutcome] = {}
        small: list[tuple[int, WriteJob, str, bytes, bool]] = []
        for i, job in enumerate(jobs):
            try:
                key, check = self._claim(job.path)
                with job.open_source() as source:
                    first = read_part(source)
                    if len(first) >= PART_SIZE:
                        outcomes[i] = self._send(job.path, key, job.mtime_ns, first, source,
                                                 check=check, expected=job.expected)  # fmt: skip
                        continue
            except (FileSyncError, OSError) as exc:
                outcomes[i] = exc
                continue
            small.append((i, job, key, first, check))
        conditional = self.capabilities.checks_on_write
        if not conditional:
            paths = [job.path for _, job, _, _, check in small if check]
            now = current_objects(
                self._reader.call, self._conn.bucket, self._base, paths, self._head
            )
            for i, job, _, _, check in small:
                if check and not _holds(now[job.path], job.expected):
                    outcomes[i] = self._changed(job.path)
        sends = [item for item in small if item[0] not in outcomes]

        def send(item: tuple[int, WriteJob, str, bytes, bool]) -> WriteOutcome:
            _, job, key, first, check = item
            try:
                return self._send(job.path, key, job.mtime_ns, first, None,
                                  check=check and conditional, expected=job.expected)  # fmt: skip
            except (FileSyncError, OSError) as exc:
                return exc

        if sends:
            with ThreadPoolExecutor(min(THREADS, len(sends)), "s3 group") as pool:
                sent = list(pool.map(send, sends))
            outcomes.update(zip([item[0] for item in sends], sent, strict=True))
        return [outcomes[i] for i in range(len(jobs))]

    def _send(
        self,
        path: str,
        key: str,
        mtime_ns: int,
        first: bytes,
        rest: BinaryIO | None,
        *,
        check: bool,
        expected: FileMeta | None,
    ) -> FileMeta:
        conditions = self._guard(path, expected) if check else {}
        again = None
        if check and not self.capabilities.checks_on_write:
            again = lambda: self._guard(path, expected)  # noqa: E731 - before a multipart ends
        try:
            done = upload(
                self._conn,
                key,
                rest,
                first=first,
                metadata={"mtime": format_mtime(mtime_ns)},
                conditions=conditions,
                before_complete=again,
                path=path,
            )
        except bex.ClientError as exc:
            if is_precondition_failed(exc):
                raise self._changed(path) from None
            raise TargetFailed(f"upload refused: {exc}", location=self.name, path=path) from None
        if not done.etag:  # learned from the next listing (which also HEADs for the time)
            return FileMeta(done.size, mtime_ns, 0)
        item = Listed(done.size, done.etag, -1)
        self._reader.mtimes.put(key, item, mtime_ns)
        with self._reader.lock:
            self._reader.etags[path] = done.etag
        return item.meta(mtime_ns)

    def _changed(self, path: str) -> FileChanged:
        return FileChanged("changed in the bucket while syncing; will retry", location=self.name,
                           path=path)  # fmt: skip

    def _guard(self, path: str, expected: FileMeta | None) -> dict[str, Any]:
        """The conditions for a PUT that must find ``expected`` at ``path``.

        A server that honours conditions checks them itself (``If-None-Match: *`` for a new
        file, ``If-Match`` with the ETag otherwise; a HEAD only when the ETag is not known).
        For one that does not, a HEAD right now is the check; it compares size and ETag, which
        tell whether the content is still the one the engine decided about.
        """
        conditional = self.capabilities.checks_on_write
        if expected is None:
            if conditional:
                return {"IfNoneMatch": "*"}
            if self._head(path) is not None:
                raise self._changed(path)
            return {}
        with self._reader.lock:
            etag = self._reader.etags.get(path)
        if not conditional or etag is None or expected.tag not in (0, tag_of(etag)):
            current = self._head(path)
            if current is None or not _holds(current, expected):
                raise self._changed(path)
            etag = current.etag
        return {"IfMatch": f'"{etag}"'} if conditional else {}

    def _head(self, path: str) -> Listed | None:
        """The object at ``path`` as a HEAD sees it (size and ETag), or None."""
        key = self._base + path

        def head(c: S3Client) -> Listed | None:
            try:
                reply = c.head_object(Bucket=self._conn.bucket, Key=key)
            except bex.ClientError as exc:
                if is_not_found(exc):
                    return None
                raise
            return Listed(int(reply.get("ContentLength", 0)), etag_of(reply.get("ETag", "")), 0)

        found: Listed | None = self._reader.call(f"checking {path}", head, path)
        return found

    def delete(self, path: str) -> None:
        """Delete ``path`` (in a batch: with the batch's ``DeleteObjects``). Missing is fine."""
        key = self._base + self._reader.check_name(path)
        self._pending.wait_for(path)
        self._reader.mtimes.forget(key)
        with self._reader.lock:
            self._reader.etags.pop(path, None)
        with self._lock:
            if self._batching:
                self._deletes.append(key)
                return
        self._reader.call(
            f"delete of {path}",
            lambda c: c.delete_object(Bucket=self._conn.bucket, Key=key),
            path,
        )

    def guarded_delete(self, path: str, expected: FileMeta | None) -> None:
        """Delete ``path`` only if it still holds ``expected`` (a HEAD just before)."""
        self._reader.check_name(path)
        self._pending.wait_for(path)
        if not _holds(self._head(path), expected):
            raise self._changed(path)
        self.delete(path)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Collect the batch's deletes and send them as few ``DeleteObjects`` at its end, after
        its uploads landed; raise the first failure of either."""
        with self._lock:
            self._batching += 1
        try:
            yield
        finally:
            with self._lock:
                self._batching -= 1
                last = not self._batching
                keys, self._deletes = (self._deletes, []) if last else ([], self._deletes)
            if last:
                try:
                    self._pending.finish()
                finally:
                    if keys:
                        self._delete_keys(keys)

    def _delete_keys(self, keys: list[str]) -> None:
        """DeleteObjects in groups; a key the server refused raises (the batch did not land)."""
        for start in range(0, len(keys), DELETE_BATCH):
            group = keys[start : start + DELETE_BATCH]

            def send(c: S3Client, group: list[str] = group) -> list[Any]:
                reply = c.delete_objects(
                    Bucket=self._conn.bucket,
                    Delete={"Objects": [{"Key": k} for k in group], "Quiet": True},
                )
                return list(reply.get("Errors", []))

            errors = self._reader.call(f"deleting {len(group)} objects", send)
            if errors:
                first = errors[0]
                raise TargetFailed(
                    f"{len(errors)} deletes refused ({first.get('Code')}: {first.get('Message')})",
                    location=self.name,
                    path=str(first.get("Key", ""))[len(self._base) :] or None,
                )

    def housekeeping(self) -> None:
        """Abort multipart uploads under our prefix abandoned long ago (a crash mid-upload)."""
        with contextlib.suppress(LocationUnavailable):
            aborted = self._reader.call(
                "cleaning up abandoned uploads",
                lambda c: abort_abandoned(c, self._conn.bucket, self._base, ABANDONED_AFTER_S),
            )
            if aborted:
                log.info("%s: aborted %d abandoned multipart uploads", self.name, aborted)


def _holds(current: Listed | None, expected: FileMeta | None) -> bool:
    """Whether the object a HEAD found is the version the engine expects (None: no object).

    Size and ETag decide: the content is what a guarded write must not lose. A tag of 0 (a
    write whose ETag the engine has not learned yet) leaves the size alone to tell.
    """
    if current is None or expected is None:
        return current is None and expected is None
    return current.size == expected.size and expected.tag in (0, tag_of(current.etag))
