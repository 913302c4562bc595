"""Writing to a bucket prefix: uploads, guarded uploads, groups of them, and deletes.

The write half of an S3 location: :class:`S3Writer`, a part :class:`S3Location` holds beside
its :class:`S3Reader` (whose ``mtimes`` and ``etags`` it keeps up to date with what it wrote).

* A write is one PUT, or a multipart upload for a large file (``upload.py``). In a batch, a
  small file goes to :class:`PendingPuts` and lands by the batch's end.
* A guarded write must find what the engine expects: where the server honours
  ``If-Match``/``If-None-Match`` (``conditional``, probed once by the location) the PUT carries
  the condition; elsewhere the object is checked just before the PUT, for a group by listing
  its folders (``group.py``), for one file by a ``HEAD``.
* Deletes made in a batch go out together as ``DeleteObjects`` at its end.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO

import botocore.exceptions as bex

from app.errors import FileChanged, FileSyncError, TargetFailed
from app.locations.base import FileMeta, WriteJob, WriteOutcome
from app.locations.s3.client import S3Connection, is_not_found, is_precondition_failed
from app.locations.s3.group import current_objects
from app.locations.s3.objects import Listed, etag_of, format_mtime, tag_of
from app.locations.s3.pending import THREADS, PendingPuts
from app.locations.s3.reader import S3Reader
from app.locations.s3.upload import PART_SIZE, read_part, upload

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

#: DeleteObjects takes at most this many keys per request.
DELETE_BATCH = 1000


class S3Writer:
    """Uploads and deletes under one bucket prefix, alone or in batches and groups."""

    def __init__(
        self, conn: S3Connection, base: str, name: str, reader: S3Reader, pending: PendingPuts
    ) -> None:
        self._conn = conn
        self._base = base
        self.name = name
        self._reader = reader
        self._pending = pending
        #: The server honours If-Match/If-None-Match (set by the location's probe).
        self.conditional = False
        self._lock = threading.Lock()
        self._batching = 0
        self._deletes: list[str] = []

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
        conditional = self.conditional
        if not conditional:
            paths = [job.path for _, job, _, _, check in small if check]
            now = current_objects(
                self._reader.call, self._conn.bucket, self._base, paths, self.head,
                lister=self._conn.list_objects,
            )  # fmt: skip
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
        if check and not self.conditional:
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
        conditional = self.conditional
        if expected is None:
            if conditional:
                return {"IfNoneMatch": "*"}
            if self.head(path) is not None:
                raise self._changed(path)
            return {}
        with self._reader.lock:
            etag = self._reader.etags.get(path)
        if not conditional or etag is None or expected.tag not in (0, tag_of(etag)):
            current = self.head(path)
            if current is None or not _holds(current, expected):
                raise self._changed(path)
            etag = current.etag
        return {"IfMatch": f'"{etag}"'} if conditional else {}

    def head(self, path: str) -> Listed | None:
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
        if not _holds(self.head(path), expected):
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


def _holds(current: Listed | None, expected: FileMeta | None) -> bool:
    """Whether the object a HEAD found is the version the engine expects (None: no object).

    Size and ETag decide: the content is what a guarded write must not lose. A tag of 0 (a
    write whose ETag the engine has not learned yet) leaves the size alone to tell.
    """
    if current is None or expected is None:
        return current is None and expected is None
    return current.size == expected.size and expected.tag in (0, tag_of(current.etag))
