"""Small uploads go out as direct PUTs (``s3/direct.py``) and mean exactly what the client's do.

Each test runs on both real servers; a real HTTP proxy in front of the server sees the
requests on the wire (who sent them: the direct path says so in its User-Agent) and answers
some itself where a test needs a server error. "The client path" is the same location with
direct PUTs switched off (``S3Connection.direct_puts``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from app.errors import AuthenticationFailed, FileChanged, FileSyncError, LocationUnavailable
from app.locations import LocationOptions, open_location
from app.locations.base import FileMeta
from app.locations.s3.client import DIRECT_MAX
from app.locations.s3.direct import USER_AGENT
from app.locations.s3.location import S3Location
from app.locations.s3.upload import PART_SIZE
from tests.helpers import wait_until
from tests.s3_proxy import S3Proxy, Seen
from tests.s3_server import SECRET, S3Server
from tests.writes import job, write_files, write_group

DIRECT = USER_AGENT.split()[0]
SECOND = 1_000_000_000


@pytest.fixture
def proxy(server: S3Server) -> Iterator[S3Proxy]:
    """A proxy in front of this test's server."""
    running = S3Proxy(server.endpoint).start()
    yield running
    running.stop()


def through(
    server: S3Server, proxy: S3Proxy, bucket: str, prefix: str, *, direct: bool = True
) -> S3Location:
    """An opened location on ``bucket/prefix`` whose requests pass the proxy."""
    url = server.url(bucket, prefix, endpoint=proxy.endpoint)
    loc = open_location(url, LocationOptions(connect_timeout=5))
    assert isinstance(loc, S3Location)
    loc._conn.direct_puts = direct
    loc.open()
    loc.adopt(has_history=False)
    return loc


def unopened(server: S3Server, bucket: str, *, direct: bool, **kw: str) -> S3Location:
    """A location never opened (its first request is the upload itself)."""
    loc = open_location(server.url(bucket, "root", **kw), LocationOptions(connect_timeout=5))
    assert isinstance(loc, S3Location)
    loc._conn.direct_puts = direct
    return loc


def test_small_uploads_are_direct_puts_and_big_ones_go_through_the_client(
    server: S3Server, bucket: str, proxy: S3Proxy
) -> None:
    loc = through(server, proxy, bucket, "root")
    try:
        before = proxy.count("PUT", DIRECT)
        files = {f"d{i % 2}/f{i:02d}.txt": os.urandom(100 + i) for i in range(20)}
        write_files(loc, files)
        with loc.batch():
            loc.write("alone.txt", io.BytesIO(b"one file, not in a group"), SECOND)
        assert proxy.count("PUT", DIRECT) - before == 21
        # From 1 MiB on a whole-file PUT goes through the client (Expect: 100-continue).
        mid = os.urandom(DIRECT_MAX)
        big = os.urandom(PART_SIZE + 5)
        write_files(loc, {"mid.bin": mid, "big.bin": big})
        assert proxy.count("PUT", DIRECT) - before == 21  # parts go through the client
        assert server.keys(bucket, "root/") == {**files, "alone.txt": b"one file, not in a group",
                                                "mid.bin": mid, "big.bin": big}  # fmt: skip
    finally:
        loc.close()


def test_a_direct_put_writes_what_the_client_path_writes(
    server: S3Server, bucket: str, proxy: S3Proxy
) -> None:
    """Bytes, user metadata, content type, ETag and what the engine records are the same."""
    files = {f"d/f{i:02d}.bin": os.urandom(i * 411) for i in range(12)}
    files["name with spaces & ü+%.txt"] = b"odd key"
    recorded = {}
    for prefix, direct in (("direct", True), ("client", False)):
        loc = through(server, proxy, bucket, prefix, direct=direct)
        try:
            before = proxy.count("PUT", DIRECT)
            recorded[prefix] = write_files(loc, files)
            assert (proxy.count("PUT", DIRECT) > before) == direct
            assert loc.scan() == {p: m for p, m in zip(files, recorded[prefix], strict=True)}
        finally:
            loc.close()
    assert recorded["direct"] == recorded["client"]
    client = server.client()
    for path in files:
        heads = [client.head_object(Bucket=bucket, Key=f"{p}/{path}") for p in ("direct", "client")]
        for field in ("ETag", "ContentLength", "ContentType", "Metadata"):
            assert heads[0].get(field) == heads[1].get(field), (path, field)
    assert server.keys(bucket, "direct/") == server.keys(bucket, "client/") == files


def test_guarded_direct_puts_keep_saves_made_elsewhere_as_the_client_path_does(
    server: S3Server, bucket: str, proxy: S3Proxy
) -> None:
    """moto refuses a stale If-Match/If-None-Match itself; rclone is checked by listing."""
    outcomes = {}
    for prefix, direct in (("direct", True), ("client", False)):
        loc = through(server, proxy, bucket, prefix, direct=direct)
        try:
            old = write_group(loc, [job(f"f{i}.txt", b"old") for i in range(6)])
            other = server.client()
            other.put_object(Bucket=bucket, Key=f"{prefix}/f2.txt", Body=b"their save")
            other.put_object(Bucket=bucket, Key=f"{prefix}/new.txt", Body=b"their new file")
            jobs = [job(f"f{i}.txt", b"mine", expected=old[i]) for i in range(6)]  # type: ignore[arg-type]
            jobs.append(job("new.txt", b"mine"))
            outcomes[prefix] = [type(o) for o in write_group(loc, jobs)]
            single = FileMeta(3, SECOND, 0)  # one guarded write alone: the same rules
            with pytest.raises(FileChanged):
                loc.guarded_write("new.txt", io.BytesIO(b"abc"), SECOND, single)
        finally:
            loc.close()
    assert outcomes["direct"] == outcomes["client"]
    assert outcomes["direct"][2] is FileChanged and outcomes["direct"][6] is FileChanged
    assert server.keys(bucket, "direct/") == server.keys(bucket, "client/")
    assert server.keys(bucket, "direct/")["f2.txt"] == b"their save"


def upload_error(loc: S3Location) -> FileSyncError:
    with pytest.raises(FileSyncError) as caught:
        loc.write("a.txt", io.BytesIO(b"abc"), SECOND)
    return caught.value


def test_a_missing_bucket_reads_as_before(server: S3Server) -> None:
    errors = {}
    for direct in (True, False):
        bucket = server.new_bucket()
        loc = unopened(server, bucket, direct=direct)
        loc.open()
        server.client().delete_bucket(Bucket=bucket)
        error = upload_error(loc)
        assert (loc._conn._direct is not None) == direct
        errors[direct] = (type(error), str(error).replace(bucket, "BUCKET"))
    assert errors[True] == errors[False]
    assert errors[True][0] is LocationUnavailable and "does not exist" in errors[True][1]


def test_credentials_refused_while_running_read_as_before(tmp_path: Path) -> None:
    own = S3Server("rclone", tmp_path / "server")
    own.start()
    try:
        bucket = own.new_bucket()
        errors = {}
        for direct in (True, False):
            loc = unopened(own, bucket, direct=direct)
            loc.open()
            own.stop()
            own.secret = "a-new-secret"  # the location still signs with the old one
            own.start()
            error = upload_error(loc)
            assert (loc._conn._direct is not None) == direct
            loc._conn._backoff.succeeded()  # the listing is sent, not held back by the backoff
            with pytest.raises(FileSyncError) as listing:
                loc.scan()
            errors[direct] = (type(error), str(error), type(listing.value), str(listing.value))
            own.stop()
            own.secret = SECRET
            own.start()
        assert errors[True] == errors[False]
        assert errors[True][0] is AuthenticationFailed
        assert errors[True][2] is AuthenticationFailed
    finally:
        own.stop()


def test_a_server_error_is_retried_and_a_lasting_one_reads_as_before(
    server: S3Server, bucket: str, proxy: S3Proxy
) -> None:
    failed: set[str] = set()

    def once(seen: Seen) -> tuple[int, str] | None:
        """A 503 SlowDown for each object's first PUT."""
        if seen.method != "PUT" or seen.path in failed or "/root/" not in seen.path:
            return None
        failed.add(seen.path)
        return 503, "SlowDown"

    loc = through(server, proxy, bucket, "root")
    try:
        proxy.fault = once
        before = proxy.count("PUT", DIRECT)
        files = {f"f{i}.txt": b"x" * i for i in range(5)}
        write_files(loc, files)
        assert proxy.count("PUT", DIRECT) - before == 10  # each sent twice
        assert server.keys(bucket, "root/") == files
    finally:
        proxy.fault = None
        loc.close()
    messages = {}
    for direct in (True, False):
        loc = through(server, proxy, bucket, f"lasting-{direct}", direct=direct)
        try:
            proxy.fault = lambda seen: (503, "SlowDown") if seen.method == "PUT" else None
            before = len(proxy.seen)
            error = upload_error(loc)
            sent = [(s.method, s.agent[:20]) for s in proxy.seen[before:]]
            assert len(sent) == 4, sent  # the client's four attempts
            messages[direct] = (type(error), str(error).replace(f"lasting-{direct}", "P"))
        finally:
            proxy.fault = None
            loc.close()
    assert messages[True] == messages[False]
    assert messages[True][0] is LocationUnavailable and "SlowDown" in messages[True][1]


def test_a_server_gone_mid_group_fails_alike_and_loses_nothing(tmp_path: Path) -> None:
    own = S3Server("rclone", tmp_path / "server")
    own.start()
    try:
        bucket = own.new_bucket()
        files = {f"f{i}.txt": b"data %d" % i for i in range(10)}
        errors = {}
        for direct in (True, False):
            loc = unopened(own, bucket, direct=direct)
            loc.open()
            loc.adopt(has_history=False)
            try:
                own.stop()
                error = upload_error(loc)
                errors[direct] = (type(error), str(error))
                with pytest.raises(LocationUnavailable), loc.batch():
                    for path, data in files.items():
                        loc.write(path, io.BytesIO(data), SECOND)
                own.start()
                wait_until(partial(landed, loc, files), timeout=60)  # as the engine retries
                assert own.keys(bucket, "root/") == files
            finally:
                loc.close()
        assert errors[True] == errors[False]
        assert errors[True][0] is LocationUnavailable
    finally:
        own.stop()


def landed(loc: S3Location, files: dict[str, bytes]) -> bool:
    """Write ``files`` again as one batch; False if the location is still unavailable."""
    try:
        with loc.batch():
            for path, data in files.items():
                loc.write(path, io.BytesIO(data), SECOND)
    except LocationUnavailable:
        return False
    return True


# --- listings -------------------------------------------------------------------------------

#: Names whose keys need encoding in a URL or in XML, beside plain ones and folders.
ODD_NAMES = ["a b.txt", "plus+sign.txt", "pct%41.txt", "amp&lt;.txt", "tilde~x.txt",
             "é/ü.txt", "d/x.txt", "d/y.txt", "d/e/z.txt", "q?mark.txt"]  # fmt: skip
#: The fields of a listing the location reads.
FIELDS = ("IsTruncated", "KeyCount", "Prefix", "Delimiter", "StartAfter", "CommonPrefixes")


def comparable(page: dict[str, Any]) -> dict[str, Any]:
    """A listing page without what differs between two requests (metadata, tokens)."""
    shown = {name: page[name] for name in FIELDS if name in page}
    shown["Contents"] = [{f: o[f] for f in ("Key", "Size", "ETag", "LastModified")}
                         for o in page.get("Contents", [])]  # fmt: skip
    shown["token"] = bool(page.get("NextContinuationToken"))
    return shown


def test_a_direct_listing_reads_as_the_client_s(
    server: S3Server, bucket: str, proxy: S3Proxy
) -> None:
    loc = through(server, proxy, bucket, "root")
    try:
        write_files(loc, {name: name.encode() * 3 for name in ODD_NAMES})
        conn, client = loc._conn, loc._conn.client()
        before = proxy.count("GET", DIRECT)
        cases: list[dict[str, Any]] = [
            {"Prefix": "root/"},
            {"Prefix": "root/", "Delimiter": "/"},
            {"Prefix": "root/d/", "StartAfter": "root/d/x.tx", "Delimiter": "/", "MaxKeys": 5},
            {"Prefix": "root/nothing/"},
            {"Prefix": "root/é/", "MaxKeys": 1},
        ]
        for params in cases:
            direct = conn.list_objects(client, Bucket=bucket, **params)
            assert comparable(direct) == comparable(client.list_objects_v2(Bucket=bucket, **params))
        assert proxy.count("GET", DIRECT) - before == len(cases)
        pages: dict[bool, list[str]] = {}
        for direct_path in (True, False):
            conn.direct_puts = direct_path
            keys, token = [], None
            while True:
                extra = {"ContinuationToken": token} if token else {}
                page = conn.list_objects(client, Bucket=bucket, Prefix="root/", MaxKeys=3, **extra)
                keys += [o["Key"] for o in page.get("Contents", [])]
                if not page["IsTruncated"]:
                    break
                token = page["NextContinuationToken"]
            pages[direct_path] = keys
        assert pages[True] == pages[False] and len(pages[True]) == len(ODD_NAMES) + 1
        conn.direct_puts = True
        assert set(loc.scan()) == set(ODD_NAMES)
    finally:
        loc.close()


def test_a_listing_of_a_missing_bucket_reads_as_before(server: S3Server) -> None:
    errors = {}
    for direct in (True, False):
        bucket = server.new_bucket()
        loc = unopened(server, bucket, direct=direct)
        loc.open()
        server.client().delete_bucket(Bucket=bucket)
        with pytest.raises(FileSyncError) as caught:
            loc.scan()
        assert (loc._conn._direct is not None) == direct
        errors[direct] = (type(caught.value), str(caught.value).replace(bucket, "BUCKET"))
    assert errors[True] == errors[False]
    assert errors[True][0] is LocationUnavailable and "does not exist" in errors[True][1]


def test_a_direct_listing_is_retried_like_the_client_s(
    server: S3Server, bucket: str, proxy: S3Proxy
) -> None:
    loc = through(server, proxy, bucket, "root")
    try:
        write_files(loc, {"a.txt": b"a"})
        failed: list[Seen] = []

        def once(seen: Seen) -> tuple[int, str] | None:
            if seen.method != "GET" or failed:
                return None
            failed.append(seen)
            return 503, "SlowDown"

        proxy.fault = once
        assert set(loc.scan()) == {"a.txt"}
        assert failed and failed[0].agent.startswith(DIRECT)
    finally:
        proxy.fault = None
        loc.close()
