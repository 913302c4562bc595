"""Reading a bucket prefix: listings, scans, ``stat`` and streamed downloads.

The read half of an S3 location: :class:`S3Reader`, a part :class:`S3Location` holds (as the
FTP location holds its scanner and reader). It also keeps what both halves learn of the bucket:
the times seen (``mtimes``), the ETags last seen (``etags``, for ``If-Match``) and whether the
root marker is known.

A listing that fails raises :class:`LocationUnavailable` (an "empty" answer would delete files
everywhere else); a key that could escape the root or that this kind cannot hold is skipped
with one warning, never listed. ``stat`` lists the one key rather than HEADing it,
because some servers' HEAD reports another ``LastModified`` than their listing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import botocore.exceptions as bex

from app.errors import FileVanished, LocationUnavailable, UnsafePath
from app.locations.base import META_DIR, FileMeta, Listing, is_internal
from app.locations.names import NamePolicy, check_relpath
from app.locations.s3.client import S3Connection, is_not_found
from app.locations.s3.objects import Listed, MtimeCache, datetime_ns, etag_of, mtime_of
from app.locations.s3.pending import PendingPuts
from app.locations.s3.saved import SavedTimes

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import ObjectTypeDef

log = logging.getLogger(__name__)

#: UTF-8 keys without line breaks (some servers refuse them) and without Windows path syntax
#: (``..\\x``, ``C:x``), which tools on Windows would read as paths.
S3_NAMES = NamePolicy(utf8_only=True, windows_syntax=True, line_breaks=False)
#: The object that marks a bucket prefix as a FileSync root.
MARKER = f"{META_DIR}/root"
#: HEADs in flight while learning the times of many new objects.
HEAD_THREADS = 8


class S3Reader:
    """Listing, stat and download of the objects under one bucket prefix."""

    def __init__(
        self,
        conn: S3Connection,
        base: str,
        name: str,
        pending: PendingPuts,
        saved: SavedTimes | None = None,
    ) -> None:
        self._conn = conn
        self._base = base
        self.name = name
        self._pending = pending
        self.mtimes = MtimeCache()
        #: Where ``mtimes`` is kept across restarts (None: nowhere), and whether it was read.
        self._saved = saved
        self._restored = False
        #: The ETag last seen per relative path (for ``If-Match``); guarded by ``lock``.
        self.etags: dict[str, str] = {}
        self.lock = threading.Lock()
        #: The root marker is known (seen or written): a full scan without it is unavailable.
        self.marked = False
        #: Unsafe keys already warned about (a poll every few seconds must not repeat it).
        self._warned: set[str] = set()

    def restore_times(self) -> None:
        """Take up the object times an earlier run saved (once; a later open keeps its own)."""
        if self._saved is not None and not self._restored:
            self._restored = True
            self.mtimes.restore(self._saved.load())

    def save_times(self) -> None:
        """Save the object times if any changed since the last save: after every full scan,
        so a restart, even after a crash, HEADs only the objects changed since."""
        changed = self.mtimes.take_changes() if self._saved is not None else None
        if self._saved is not None and changed is not None:
            self._saved.save(changed)

    def marker_gone(self) -> LocationUnavailable:
        """The error for a known root whose marker object disappeared."""
        return LocationUnavailable(
            f"the {MARKER} object is gone from {self._conn.where} under {self._base or '/'} "
            f"(prefix emptied or replaced?); its files are not deleted elsewhere. If this is "
            f"the right place, create an empty {MARKER} object there to resume",
            location=self.name,
        )

    def call(self, what: str, action: Any, path: str | None = None) -> Any:
        """Run ``action`` through the connection; a refusal it does not know is unavailable."""
        try:
            return self._conn.call(what, action, path)
        except bex.ClientError as exc:
            raise LocationUnavailable(
                f"{what} failed: {exc}", location=self.name, path=path
            ) from None

    def _rel(self, key: str) -> str | None:
        """The relative path of ``key``, or None for our own, folder-marker or unsafe keys."""
        rel = key[len(self._base) :]
        if not rel or rel.endswith("/") or is_internal(rel):
            return None
        try:
            check_relpath(rel)
            self.check_name(rel)
        except UnsafePath:
            if rel not in self._warned:
                self._warned.add(rel)
                log.warning("%s: skipping the object %r: not a safe file name", self.name, rel)
            return None
        return rel

    def check_name(self, path: str) -> str:
        """``path`` if a bucket can hold it; else :class:`UnsafePath`."""
        check_relpath(path)
        why = S3_NAMES.refusal(path)
        if why is not None:
            raise UnsafePath(f"cannot hold the name {path!r} in a bucket: {why}")
        return path

    def _list(self, c: S3Client, prefix: str) -> list[ObjectTypeDef]:
        objects: list[ObjectTypeDef] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self._conn.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._conn.list_objects(c, **kwargs)
            objects.extend(page.get("Contents", []))
            if not page.get("IsTruncated"):
                return objects
            token = page.get("NextContinuationToken")
            if not token:
                raise LocationUnavailable(
                    "the server cut the listing short without a continuation token",
                    location=self.name,
                )

    def scan(self, prefix: str = "") -> Listing:
        """List every object under ``prefix`` (a folder path or ``""``), HEADing only new ones."""
        under = self._base + (f"{prefix.strip('/')}/" if prefix else "")
        self._pending.settle()
        objects = self.call("listing", lambda c: self._list(c, under))
        listed: dict[str, tuple[str, Listed]] = {}
        marker_seen = False
        for obj in objects:
            key = obj["Key"]
            if key == self._base + MARKER:
                marker_seen = True
            rel = self._rel(key)
            if rel is not None:
                listed[rel] = (key, _listed(obj))
        if not prefix and self.marked and not marker_seen:
            raise self.marker_gone()
        if not prefix:
            self.mtimes.keep_only({key for key, _ in listed.values()}, self._base)
        metas = self._resolve(listed)
        with self.lock:
            if not prefix:
                self.etags.clear()
            self.etags.update({rel: item.etag for rel, (_, item) in listed.items()})
        if not prefix:
            self.save_times()
        return metas

    def _resolve(self, listed: dict[str, tuple[str, Listed]]) -> Listing:
        """Turn listed objects into metas, HEADing (in parallel) those the cache lacks."""
        metas: Listing = {}
        unknown: list[tuple[str, str, Listed]] = []
        for rel, (key, item) in listed.items():
            known, mtime = self.mtimes.get(key, item)
            if known:
                metas[rel] = item.meta(mtime)
            else:
                unknown.append((rel, key, item))
        if len(unknown) > 1:
            with ThreadPoolExecutor(HEAD_THREADS, thread_name_prefix="s3-head") as pool:
                found = list(pool.map(lambda u: self._head_mtime(u[1], u[2]), unknown))
        else:
            found = [self._head_mtime(key, item) for _, key, item in unknown]
        for (rel, _, item), (gone, mtime) in zip(unknown, found, strict=True):
            if not gone:
                metas[rel] = item.meta(mtime)
        return metas

    def _head_mtime(self, key: str, item: Listed) -> tuple[bool, int | None]:
        """``(gone, mtime)`` of one object, remembered for its listed version."""

        def head(c: S3Client) -> tuple[bool, int | None]:
            try:
                reply = c.head_object(Bucket=self._conn.bucket, Key=key)
            except bex.ClientError as exc:
                if is_not_found(exc):
                    return True, None
                raise
            return False, mtime_of(reply.get("Metadata", {}))

        gone, mtime = self.call("reading a file's time", head, key[len(self._base) :])
        if not gone:
            self.mtimes.put(key, item, mtime)
        return gone, mtime

    def stat(self, path: str) -> FileMeta | None:
        """List just ``path``'s key: the same facts a scan reports (a HEAD's time may differ)."""
        self.check_name(path)
        key = self._base + path
        self._pending.wait_for(path)
        reply = self.call(
            f"checking {path}",
            lambda c: self._conn.list_objects(c, Bucket=self._conn.bucket, Prefix=key, MaxKeys=1),
            path,
        )
        found = [o for o in reply.get("Contents", []) if o["Key"] == key]
        if not found:
            with self.lock:
                self.etags.pop(path, None)
            return None
        item = _listed(found[0])
        with self.lock:
            self.etags[path] = item.etag
        return self._resolve({path: (key, item)}).get(path)

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        """Stream the object's body; a missing object is :class:`FileVanished`."""
        key = self._base + self.check_name(path)
        self._pending.wait_for(path)

        def get(c: S3Client) -> Any:
            try:
                return c.get_object(Bucket=self._conn.bucket, Key=key)["Body"]
            except bex.ClientError as exc:
                if is_not_found(exc):
                    raise FileVanished(
                        "the object is gone from the bucket", location=self.name, path=path
                    ) from None
                raise

        body = self.call(f"download of {path}", get, path)
        try:
            yield cast(BinaryIO, _Body(body, self.name, path))
        finally:
            body.close()


def _listed(obj: ObjectTypeDef) -> Listed:
    return Listed(
        int(obj.get("Size", 0)), etag_of(obj.get("ETag", "")), datetime_ns(obj["LastModified"])
    )


class _Body:
    """A download stream whose connection errors are FileSync errors."""

    def __init__(self, body: Any, name: str, path: str) -> None:
        self._body = body
        self._name = name
        self._path = path

    def read(self, size: int = -1) -> bytes:
        try:
            return bytes(self._body.read(None if size < 0 else size))
        except (bex.BotoCoreError, OSError) as exc:
            raise LocationUnavailable(
                f"download failed: {exc}", location=self._name, path=self._path
            ) from None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._body.close()
