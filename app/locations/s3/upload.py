"""Uploads with bounded memory: one PUT for a small file, a multipart upload for a large one.

A source is read in parts of :data:`PART_SIZE`; only the part being sent is in memory, so a
1 GiB file costs the same RAM as an 8 MiB one. A multipart upload that fails part-way (the
source failed, the server went away, a precondition did not hold) is aborted, so the bucket
keeps no orphaned parts; uploads abandoned by a crash are aborted later by the location's
housekeeping (:func:`abort_abandoned`). Either way the object appears whole or not at all: S3
makes it visible only when the PUT or the completion succeeds.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from app.errors import FileSyncError
from app.locations.s3.client import S3Connection
from app.locations.s3.objects import etag_of

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

#: Bytes per part (S3 wants at least 5 MiB for every part but the last).
PART_SIZE = 8 * 1024 * 1024


@dataclass(frozen=True)
class Uploaded:
    """What the server reports for the object just written (``etag`` "" if not to be trusted:
    some servers answer a multipart completion with another ETag than they later list)."""

    size: int
    etag: str


def read_part(source: BinaryIO, size: int = PART_SIZE) -> bytes:
    """Read up to ``size`` bytes; fewer only at the end of ``source``."""
    buffer = bytearray()
    while len(buffer) < size:
        chunk = source.read(size - len(buffer))
        if not chunk:
            break
        buffer += chunk
    return bytes(buffer)


def upload(
    conn: S3Connection,
    key: str,
    source: BinaryIO | None,
    *,
    first: bytes | None = None,
    metadata: dict[str, str],
    conditions: dict[str, Any],
    before_complete: Callable[[], object] | None = None,
    path: str | None = None,
) -> Uploaded:
    """Write ``first`` and then the rest of ``source`` to ``key``; ``conditions`` are
    ``IfMatch``/``IfNoneMatch`` headers. ``first`` (read here if None) is the first part;
    shorter than a part, it is the whole file.

    ``before_complete`` runs just before a multipart upload is completed (a server that ignores
    conditions gets its check there, after the long part). Errors propagate as raised:
    the source's own unchanged, the server's as FileSync errors or ClientErrors.
    """
    bucket = conn.bucket
    if first is None:
        first = read_part(source) if source is not None else b""
    if len(first) < PART_SIZE or source is None:
        etag = conn.put_object(
            f"upload of {path}", key, first, metadata=metadata, conditions=conditions, path=path
        )
        return Uploaded(len(first), etag_of(etag))
    created = conn.call(
        f"upload of {path}",
        lambda c: c.create_multipart_upload(Bucket=bucket, Key=key, Metadata=metadata),
        path,
    )
    upload_id = created["UploadId"]
    try:
        parts: list[CompletedPartTypeDef] = []
        size, chunk = 0, first
        while chunk:
            number, body = len(parts) + 1, chunk

            def send(c: S3Client, n: int = number, data: bytes = body) -> str:
                reply = c.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=data
                )
                return reply["ETag"]

            parts.append({"ETag": conn.call(f"upload of {path}", send, path), "PartNumber": number})
            size += len(chunk)
            del body
            chunk = b""
            chunk = read_part(source)
        if before_complete is not None:
            before_complete()
        conn.call(
            f"upload of {path}",
            lambda c: c.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                **conditions,
            ),
            path,
        )
    except BaseException:
        with contextlib.suppress(FileSyncError, Exception):
            conn.client().abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return Uploaded(size, "")


def abort_abandoned(client: S3Client, bucket: str, prefix: str, older_than_s: float) -> int:
    """Abort the multipart uploads under ``prefix`` started more than ``older_than_s`` ago
    (left behind by a crash); return how many."""
    now, aborted = time.time(), 0
    reply = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    for item in reply.get("Uploads", []):
        started = item.get("Initiated", datetime.now(UTC)).timestamp()
        if now - started > older_than_s:
            client.abort_multipart_upload(Bucket=bucket, Key=item["Key"], UploadId=item["UploadId"])
            aborted += 1
    return aborted
