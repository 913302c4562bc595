"""Keeping a conflict copy inside the bucket: the server copies the object, no byte comes here.

The engine keeps a conflict's losing version under its conflict-copy name before the winner
replaces the name (:mod:`app.engine.keepaside`). Through the stream interface that moves the
whole object over the link twice (down, then up again); ``CopyObject`` (beyond 5 GiB a
multipart copy, ``UploadPartCopy``) has the server make it instead.

* The source must be the version the engine planned: a ``HEAD`` compares its size and ETag
  with the planned meta, and the copy carries ``x-amz-copy-source-if-match`` with that ETag
  (AWS then refuses a changed source itself). Servers that ignore the header (``rclone serve
  s3``, moto) are checked after the copy: its ETag must be the source's, or else a ``HEAD``
  must still find the planned version at the source. A copy of another version is deleted
  and the keep-aside fails with :class:`FileChanged`, as a change seen before it does.
* The copy's metadata is replaced: the source's user metadata and content headers again,
  with ``mtime`` set to the planned time, so the copy shows the loser's time also where the
  source had none (its time was then ``LastModified``, which a copy does not keep).
* An existing name raises FileExistsError (a ``HEAD`` just before, and ``If-None-Match: *``
  where the server honours conditions). A server that does not implement copies raises
  :class:`NotSupported` (the engine then copies through the stream) and is not asked again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import botocore.exceptions as bex

from app.errors import FileChanged, FileSyncError, FileVanished, NotSupported
from app.locations.base import FileMeta
from app.locations.s3.client import (
    S3Connection,
    error_code,
    is_not_found,
    is_precondition_failed,
)
from app.locations.s3.objects import MTIME_KEY, Listed, etag_of, format_mtime, tag_of
from app.locations.s3.pending import PendingPuts
from app.locations.s3.reader import S3Reader

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

#: The largest object one ``CopyObject`` copies; a larger one is copied in parts.
COPY_MAX = 5 * 1024**3
#: Bytes per part of a multipart copy (more for objects that would need more parts).
COPY_PART = 512 * 1024**2
#: Parts one multipart upload may have.
MAX_PARTS = 10_000
#: Content headers a ``HEAD`` reports that a copy with replaced metadata must repeat.
CONTENT_HEADERS = (
    "ContentType",
    "ContentEncoding",
    "ContentDisposition",
    "ContentLanguage",
    "CacheControl",
)
#: Error codes of a server without copies (answered as 501, never an outage).
NOT_IMPLEMENTED = frozenset({"NotImplemented", "501"})


@dataclass(frozen=True)
class Found:
    """An object as a ``HEAD`` reports it: what a copy must check and carry over."""

    size: int
    etag: str
    metadata: dict[str, str]
    content: dict[str, str]

    def holds(self, expected: FileMeta) -> bool:
        """Whether this is the planned version (size and ETag; a tag of 0 leaves the size)."""
        return self.size == expected.size and expected.tag in (0, tag_of(self.etag))


class _Refused(Exception):
    """The server answered the copy with an error code it is not worth an outage for."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class ServerCopies:
    """Conflict copies made by the server within one bucket prefix (see the module doc)."""

    def __init__(
        self,
        conn: S3Connection,
        base: str,
        name: str,
        reader: S3Reader,
        pending: PendingPuts,
        *,
        conditional: Callable[[], bool],
    ) -> None:
        self._conn = conn
        self._base = base
        self.name = name
        self._reader = reader
        self._pending = pending
        #: Whether the server honours If-Match/If-None-Match (the location's probe).
        self._conditional = conditional
        #: The server refused a copy as not implemented: the stream path from now on.
        self.unsupported = False

    def copy(self, src: str, dst: str, expected: FileMeta) -> FileMeta:
        """Copy the object at ``src`` to the new name ``dst`` if it is ``expected``."""
        if self.unsupported:
            raise NotSupported("this server makes no copies", location=self.name, path=src)
        src_key = self._base + self._reader.check_name(src)
        dst_key = self._base + self._reader.check_name(dst)
        self._pending.wait_for(src)
        self._pending.wait_for(dst)
        found = self._head(src)
        if found is None:
            raise self._vanished(src)
        if not found.holds(expected):
            raise self._changed(src)
        if self._head(dst) is not None:
            raise FileExistsError(errno.EEXIST, "a file of that name exists", dst)
        metadata = {k: v for k, v in found.metadata.items() if k.lower() != MTIME_KEY}
        metadata[MTIME_KEY] = format_mtime(expected.mtime_ns)
        copy = _Copy(self._conn.bucket, src_key, dst_key, found, metadata, self._conditional())
        try:
            if found.size > COPY_MAX:
                etag = self._call(f"copy of {src}", copy.in_parts, src)
            else:
                etag = self._call(f"copy of {src}", copy.whole, src)
        except _Refused as exc:
            if exc.code in NOT_IMPLEMENTED:
                self.unsupported = True
            log.info("%s: the server did not copy %s itself (%s)", self.name, src, exc.code)
            raise NotSupported(f"copy refused ({exc.code})", location=self.name, path=src) from None
        except bex.ClientError as exc:
            raise self._refusal(src, expected, exc) from None
        if etag != found.etag:  # a multipart source's copy, or another version's
            self._check_after(src, dst_key, expected)
        size = found.size
        if not etag:
            return FileMeta(size, expected.mtime_ns, 0)
        self._reader.mtimes.put(dst_key, Listed(size, etag, -1), expected.mtime_ns)
        with self._reader.lock:
            self._reader.etags[dst] = etag
        return FileMeta(size, expected.mtime_ns, tag_of(etag))

    def _call(self, what: str, action: Callable[[S3Client], str], path: str) -> str:
        """Run a copy request; a refusal the connection does not translate (a failed
        condition, no such key) propagates as the ClientError for :meth:`_refusal`."""
        return self._conn.call(what, action, path)

    def _check_after(self, src: str, dst_key: str, expected: FileMeta) -> None:
        """The copy's ETag does not prove it: the source must still be the planned version,
        else the copy (of another version, maybe) is deleted and the keep-aside fails."""
        now = self._head(src)
        if now is not None and now.holds(expected):
            return
        with contextlib.suppress(FileSyncError):
            self._reader.call(
                f"removing a copy of {src}",
                lambda c: c.delete_object(Bucket=self._conn.bucket, Key=dst_key),
                src,
            )
        raise self._vanished(src) if now is None else self._changed(src)

    def _refusal(self, src: str, expected: FileMeta, exc: bex.ClientError) -> Exception:
        """What a refused copy means for the engine: a source no longer the planned version
        is a change (or gone); else a failed condition is the name taken meanwhile, and any
        other refusal leaves the copy to the stream path."""
        now = None if is_not_found(exc) else self._head(src)
        if now is None:
            return self._vanished(src)
        if not now.holds(expected):
            return self._changed(src)
        if is_precondition_failed(exc) or error_code(exc) == "ConditionalRequestConflict":
            return FileExistsError(errno.EEXIST, "a file of that name was made meanwhile", src)
        log.info("%s: the server did not copy %s itself (%s)", self.name, src, exc)
        return NotSupported(f"copy refused ({error_code(exc)})", location=self.name, path=src)

    def _head(self, path: str) -> Found | None:
        key = self._base + path

        def head(c: S3Client) -> Found | None:
            try:
                reply: Any = c.head_object(Bucket=self._conn.bucket, Key=key)
            except bex.ClientError as exc:
                if is_not_found(exc):
                    return None
                raise
            content = {h: str(reply[h]) for h in CONTENT_HEADERS if reply.get(h)}
            return Found(int(reply.get("ContentLength", 0)), etag_of(reply.get("ETag", "")),
                         dict(reply.get("Metadata", {})), content)  # fmt: skip

        found: Found | None = self._reader.call(f"checking {path}", head, path)
        return found

    def _changed(self, path: str) -> FileChanged:
        return FileChanged("changed in the bucket while syncing; will retry", location=self.name,
                           path=path)  # fmt: skip

    def _vanished(self, path: str) -> FileVanished:
        return FileVanished("the object vanished before its conflict copy was made",
                            location=self.name, path=path)  # fmt: skip


@dataclass(frozen=True)
class _Copy:
    """One server-side copy's requests; each returns the copy's ETag ("": not to be trusted)."""

    bucket: str
    src_key: str
    dst_key: str
    found: Found
    metadata: dict[str, str]
    conditional: bool

    @property
    def _dst_conditions(self) -> dict[str, Any]:
        return {"IfNoneMatch": "*"} if self.conditional else {}

    def whole(self, c: S3Client) -> str:
        """One ``CopyObject``, only from the version found, with the metadata replaced."""
        with _refused():
            reply = c.copy_object(
                Bucket=self.bucket,
                Key=self.dst_key,
                CopySource={"Bucket": self.bucket, "Key": self.src_key},
                CopySourceIfMatch=f'"{self.found.etag}"',
                MetadataDirective="REPLACE",
                Metadata=self.metadata,
                **self.found.content,  # type: ignore[arg-type]
                **self._dst_conditions,
            )
        return etag_of(reply.get("CopyObjectResult", {}).get("ETag", ""))

    def in_parts(self, c: S3Client) -> str:
        """A multipart upload whose parts are copied from the version found (each part only
        from it); aborted if any part fails."""
        size = self.found.size
        part = max(COPY_PART, -(-size // MAX_PARTS))
        with _refused():
            created = c.create_multipart_upload(
                Bucket=self.bucket, Key=self.dst_key, Metadata=self.metadata,
                **self.found.content,  # type: ignore[arg-type]
            )  # fmt: skip
        upload_id = created["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            for number, start in enumerate(range(0, size, part), 1):
                end = min(start + part, size) - 1
                with _refused():
                    reply = c.upload_part_copy(
                        Bucket=self.bucket,
                        Key=self.dst_key,
                        UploadId=upload_id,
                        PartNumber=number,
                        CopySource={"Bucket": self.bucket, "Key": self.src_key},
                        CopySourceRange=f"bytes={start}-{end}",
                        CopySourceIfMatch=f'"{self.found.etag}"',
                    )
                etag = reply.get("CopyPartResult", {}).get("ETag")
                if not etag:  # rclone answers 200 and copies nothing
                    raise _Refused("no part copied")
                parts.append({"ETag": etag, "PartNumber": number})
            with _refused():
                c.complete_multipart_upload(
                    Bucket=self.bucket, Key=self.dst_key, UploadId=upload_id,
                    MultipartUpload={"Parts": parts}, **self._dst_conditions,
                )  # fmt: skip
        except BaseException:
            with contextlib.suppress(Exception):
                c.abort_multipart_upload(Bucket=self.bucket, Key=self.dst_key, UploadId=upload_id)
            raise
        return ""


@contextlib.contextmanager
def _refused() -> Iterator[None]:
    """Turn "not implemented" (a 501, which the connection would take for an outage) into
    :class:`_Refused`; other errors pass."""
    try:
        yield
    except bex.ClientError as exc:
        if error_code(exc) in NOT_IMPLEMENTED:
            raise _Refused(error_code(exc)) from None
        raise
