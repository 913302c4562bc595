"""What a group of keys holds right now, in few requests: the guard of a group's uploads.

The engine hands a location its copies in groups (``batched_writes``). On a server that
ignores ``If-Match``/``If-None-Match`` each upload must first check that nobody else wrote its
key since the engine looked. A ``HEAD`` per file doubles the requests of small uploads (and
botocore spends about a millisecond of CPU on each); one ``ListObjectsV2`` of a folder shows up
to 1,000 keys at once. So the group's keys are checked folder by folder, each folder listed
from just before its first key of the group (``StartAfter``, with ``Delimiter`` so subfolders
count as one entry) until past its last one. A listed entry costs the client far less than a
``HEAD`` (about 0.05 ms against 1 ms), but not nothing: a folder's listing stops after
:data:`ENTRIES_PER_KEY` entries per key of the group in it, and the keys it did not reach, and
those of folders holding only one or two of them, are checked by ``HEAD``. A new folder's
files, or a folder copied whole, are listed in one page; a few files among thousands of
others cost a short page and a few ``HEAD`` requests.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from app.locations.s3.objects import Listed, datetime_ns, etag_of

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

#: Runs one request through the location (``what``, the action): its errors are FileSync's.
Call = Callable[[str, Callable[["S3Client"], Any]], Any]
#: Sends one ``ListObjectsV2`` (the client, the client's parameters): the client's own method,
#: or the connection's, which sends it directly where it can.
Lister = Callable[..., Any]


def _by_client(client: S3Client, **params: Any) -> Any:
    return client.list_objects_v2(**params)


#: A folder with fewer of the group's keys than this is checked by HEAD (one request each).
LIST_FROM = 3
#: Entries a folder's listing may read per key of the group in it (each entry costs the
#: client about a twentieth of a HEAD), so listing never costs more than HEADs would.
ENTRIES_PER_KEY = 10
#: ListObjectsV2 returns at most this many entries a page.
PAGE = 1000
#: HEADs in flight at once for the keys no listing covered.
HEAD_THREADS = 8

#: What a key holds now: a listed object, or None (no object).
Current = dict[str, Listed | None]


def current_objects(
    call: Call,
    bucket: str,
    base: str,
    paths: Iterable[str],
    head: Callable[[str], Listed | None],
    *,
    lister: Lister = _by_client,
) -> Current:
    """What the bucket holds at each of ``paths`` (relative to the key prefix ``base``).

    ``head(path)`` checks one path; it is used where listing would cost more; ``lister`` sends
    the listings. Errors propagate as ``call`` raises them (a listing that fails is never
    "nothing there").
    """
    folders: dict[str, list[str]] = {}
    for path in sorted(set(paths)):
        folders.setdefault(posixpath.dirname(path), []).append(path)
    found: Current = {}
    rest: list[str] = []
    for folder, names in folders.items():
        if len(names) < LIST_FROM:
            rest += names
            continue
        budget = ENTRIES_PER_KEY * len(names)
        covered = _list_range(call, lister, bucket, base, folder=folder, names=names,
                              budget=budget)  # fmt: skip
        found.update(covered)
        rest += [name for name in names if name not in covered]
    if len(rest) > 1:
        with ThreadPoolExecutor(HEAD_THREADS, thread_name_prefix="s3-guard") as pool:
            found.update(zip(rest, pool.map(head, rest), strict=True))
    elif rest:
        found[rest[0]] = head(rest[0])
    return found


def _list_range(
    call: Call, lister: Lister, bucket: str, base: str, *, folder: str, names: list[str],
    budget: int,
) -> Current:  # fmt: skip
    """List ``folder`` from just before ``names[0]`` up to ``names[-1]`` (sorted), at most
    ``budget`` entries; return what it shows for each name it reached."""
    prefix = base + (f"{folder}/" if folder else "")
    first, last = base + names[0], base + names[-1]
    wanted = {base + name: name for name in names}
    seen: dict[str, Listed] = {}
    reached = ""  # every key up to this one has been listed
    token: str | None = None
    while budget > 0:
        size = min(PAGE, budget)
        budget -= size

        def page(c: S3Client, token: str | None = token, size: int = size) -> Any:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
            kwargs["MaxKeys"] = size
            # StartAfter is exclusive; a key's own prefix sorts just before it.
            kwargs["StartAfter"] = first[:-1]
            if token:
                kwargs["ContinuationToken"] = token
            return lister(c, **kwargs)

        reply = call("checking a group of uploads", page)
        for obj in reply.get("Contents", []):
            key = obj["Key"]
            reached = max(reached, key)
            if key in wanted:
                seen[key] = Listed(
                    int(obj.get("Size", 0)),
                    etag_of(obj.get("ETag", "")),
                    datetime_ns(obj["LastModified"]),
                )
        if not reply.get("IsTruncated"):
            reached = last  # the whole range has been listed
            break
        token = reply.get("NextContinuationToken")
        if not token or reached >= last:
            break
    return {name: seen.get(key) for key, name in wanted.items() if key <= reached}
