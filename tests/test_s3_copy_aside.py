"""A conflict's loser in a bucket is kept under its conflict name by the server (CopyObject).

Each test runs on both real servers (``rclone serve s3``, moto), with a real HTTP proxy in
front that counts the body bytes crossing the wire each way: a copy made by the server moves
none of the object's bytes, where a download and upload again would move them twice. The
proxy also lets another program rewrite the loser just as its bytes are taken, to prove the
copy is of the planned version or of none.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from app.engine.keepaside import keep_aside
from app.errors import FileChanged, FileVanished, NotSupported
from app.locations.s3 import copyaside
from app.locations.s3.location import S3Location
from tests.helpers import tree
from tests.s3_proxy import S3Proxy, Seen
from tests.s3_server import S3Server
from tests.test_conflict_keeps_name import NAME, WINNER, Conflict, Target, conflict_copies
from tests.test_s3_direct import through

NS = 1_000_000_000
LOSER_TIME = 1_700_000_100  # the Conflict rig's loser time (T + 100)
NEWER_TIME = 1_700_000_150  # a third save, still older than the winner (T + 200)
#: Body bytes a copy may move: requests and answers about the object, none of its bytes.
LITTLE = 64 * 1024


@pytest.fixture
def proxy(server: S3Server) -> Iterator[S3Proxy]:
    """A proxy in front of this test's server."""
    running = S3Proxy(server.endpoint).start()
    yield running
    running.stop()


@pytest.fixture
def loc(server: S3Server, bucket: str, proxy: S3Proxy) -> Iterator[S3Location]:
    """An opened location on ``bucket/root`` whose requests pass the proxy."""
    opened = through(server, proxy, bucket, "root")
    yield opened
    opened.close()


def save(server: S3Server, bucket: str, path: str, data: bytes, mtime: int | None) -> None:
    """Another program's upload of ``path`` (straight to the server, not through the proxy)."""
    meta = {} if mtime is None else {"mtime": f"{mtime}.000000000"}
    server.client().put_object(Bucket=bucket, Key=f"root/{path}", Body=data, Metadata=meta)


def takes_bytes_of(bucket: str, path: str, seen: Seen) -> bool:
    """Whether ``seen`` reads the object at ``path``: a download, or the server's copy of it."""
    key = f"/{bucket}/root/{path}"
    return (seen.method == "GET" and seen.path == key) or (
        seen.method == "PUT" and f"/{unquote(seen.copy_source).lstrip('/')}" == key
    )


def proxied_target(server: S3Server, bucket: str, proxy: S3Proxy) -> Target:
    """The bucket's ``root`` as the Conflict rig's target, FileSync's requests through the proxy."""
    return Target(
        server.url(bucket, "root", endpoint=proxy.endpoint),
        lambda data, mtime: save(server, bucket, NAME, data, int(mtime)),
        lambda: server.keys(bucket, "root/"),
    )


def kept_versions(server: S3Server, bucket: str) -> dict[str, tuple[bytes, int]]:
    """Each conflict copy in the bucket: its bytes and the time FileSync reports for it."""
    fresh = server.location(bucket, "root")
    try:
        metas = fresh.scan()
    finally:
        fresh.close()
    files = server.keys(bucket, "root/")
    return {n: (data, metas[n].mtime_ns) for n, data in conflict_copies(files).items()}


def test_the_loser_is_kept_by_the_server_with_its_bytes_and_time(
    server: S3Server, bucket: str, proxy: S3Proxy, tmp_path: Path
) -> None:
    """A real conflict synced by the engine: the copy holds the loser's bytes and time, and
    not one of its bytes crossed the wire to make it (the stream path downloads the loser and
    uploads it again; the copy's download to the other location is the sync's, as for any
    new file)."""
    loser = os.urandom(3 * 1024 * 1024)
    target = proxied_target(server, bucket, proxy)
    c = Conflict(tmp_path, target, loser=loser)
    try:
        start = len(proxy.traffic)
        assert c.run_once(), "the conflict's sync did not converge"
        traffic = proxy.traffic[start:]
        uploaded = sum(up for _, up, _ in traffic)
        assert uploaded < len(WINNER) + LITTLE, f"{uploaded} B uploaded for a {len(loser)} B loser"
        name = f"/{bucket}/root/{NAME}"
        downloaded = sum(down for s, _, down in traffic if s.method == "GET" and s.path == name)
        assert downloaded == 0, f"{downloaded} B of the loser downloaded"
        assert any(s.method == "PUT" and takes_bytes_of(bucket, NAME, s) for s, _, _ in traffic)
        assert list(kept_versions(server, bucket).values()) == [(loser, LOSER_TIME * NS)]
        assert target.files()[NAME] == WINNER
        here = tree(c.source_root)
        assert list(conflict_copies(here).values()) == [loser]
        (name,) = conflict_copies(here)
        assert (c.source_root / name).stat().st_mtime_ns == LOSER_TIME * NS
    finally:
        c.close()


def test_a_loser_rewritten_as_it_is_copied_is_not_kept_as_the_wrong_version(
    server: S3Server, bucket: str, proxy: S3Proxy, tmp_path: Path
) -> None:
    """Another program saves the file again just as the loser's bytes are taken: no conflict
    copy may hold that newer save under the loser's time; the newer save is kept instead."""
    newer = b"a third save, made in the bucket as the loser was being kept " * 30
    target = proxied_target(server, bucket, proxy)
    c = Conflict(tmp_path, target)
    fired: list[Seen] = []

    def rewrite(seen: Seen) -> None:
        if not fired and takes_bytes_of(bucket, NAME, seen):
            fired.append(seen)
            save(server, bucket, NAME, newer, NEWER_TIME)

    proxy.before = rewrite
    try:
        converged = False
        for _ in range(3):
            if c.run_once():
                converged = True
                break
        assert fired, "the loser's bytes were never taken"
        assert converged, "the syncs after the rewrite did not converge"
        kept = kept_versions(server, bucket)
        assert (newer, LOSER_TIME * NS) not in kept.values(), "the newer save kept as the loser"
        assert sorted(kept.values()) == [(newer, NEWER_TIME * NS)], kept
        assert target.files()[NAME] == WINNER
    finally:
        proxy.before = None
        c.close()


def test_copy_aside_copies_only_the_planned_version(
    server: S3Server, bucket: str, proxy: S3Proxy, loc: S3Location
) -> None:
    """A 20 MiB object copied in the bucket: the copy's bytes and time are the planned
    version's, and a changed, missing or taken name is refused as the stream path would be."""
    data = os.urandom(20 * 1024 * 1024)
    save(server, bucket, "big.bin", data, LOSER_TIME)
    planned = loc.stat("big.bin")
    assert planned is not None and planned.mtime_ns == LOSER_TIME * NS
    before = proxy.body_bytes()
    meta = loc.copy_aside("big.bin", "kept/big.bin", planned)
    assert proxy.body_bytes() - before < LITTLE
    assert meta.same_version(planned) and loc.stat("kept/big.bin") == meta
    assert server.keys(bucket, "root/kept/") == {"big.bin": data}
    with pytest.raises(FileExistsError):
        loc.copy_aside("big.bin", "kept/big.bin", planned)
    save(server, bucket, "big.bin", b"another version", LOSER_TIME)
    with pytest.raises(FileChanged):
        loc.copy_aside("big.bin", "other.bin", planned)
    with pytest.raises(FileVanished):
        loc.copy_aside("gone.bin", "other.bin", planned)
    assert set(server.keys(bucket, "root/")) == {"big.bin", "kept/big.bin"}


def test_an_object_without_a_stored_time_is_copied_with_the_time_it_showed(
    server: S3Server, bucket: str, loc: S3Location
) -> None:
    """An object another tool wrote shows its LastModified; the copy keeps that time, which
    the server would otherwise give it anew."""
    save(server, bucket, "plain.txt", b"no mtime metadata", None)
    planned = loc.stat("plain.txt")
    assert planned is not None
    meta = loc.copy_aside("plain.txt", "kept.txt", planned)
    assert meta.same_version(planned)
    fresh = server.location(bucket, "root")
    try:
        assert fresh.stat("kept.txt") == meta
    finally:
        fresh.close()


def test_a_big_object_is_copied_in_parts_only_from_the_planned_version(
    server: S3Server, bucket: str, proxy: S3Proxy, loc: S3Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond CopyObject's 5 GiB (made 1 MiB here) the server copies parts; one rewrite of the
    source during those leaves no copy. rclone copies no parts: the stream path then."""
    monkeypatch.setattr(copyaside, "COPY_MAX", 1024 * 1024)
    monkeypatch.setattr(copyaside, "COPY_PART", 5 * 1024 * 1024)
    data = os.urandom(12 * 1024 * 1024)
    save(server, bucket, "big.bin", data, LOSER_TIME)
    planned = loc.stat("big.bin")
    assert planned is not None
    if server.flavour == "rclone":
        with pytest.raises(NotSupported):
            loc.copy_aside("big.bin", "kept.bin", planned)
        assert set(server.keys(bucket, "root/")) == {"big.bin"}
        return
    before = proxy.body_bytes()
    meta = loc.copy_aside("big.bin", "kept.bin", planned)
    assert proxy.body_bytes() - before < LITTLE
    kept = loc.stat("kept.bin")
    assert meta.same_version(planned) and kept is not None and kept.same_version(planned)
    assert server.keys(bucket, "root/")["kept.bin"] == data
    assert any("partNumber=3" in s.path and s.copy_source for s, _, _ in proxy.traffic)

    def rewrite(seen: Seen) -> None:  # the same size: only the ETag tells
        if "partNumber=2" in seen.path:
            save(server, bucket, "big.bin", os.urandom(len(data)), LOSER_TIME)

    proxy.before = rewrite
    with pytest.raises(FileChanged):
        loc.copy_aside("big.bin", "other.bin", planned)
    proxy.before = None
    assert "other.bin" not in server.keys(bucket, "root/")


def test_refusals_as_aws_gives_them_mean_what_the_stream_path_would(
    server: S3Server, bucket: str, proxy: S3Proxy, loc: S3Location
) -> None:
    """The proxy answers the CopyObject as AWS would: 412 for a source rewritten meanwhile
    (FileChanged), 412 for a name made meanwhile (FileExistsError), 501 from a server without
    copies (the engine's keep-aside then copies through the stream, and the server is not
    asked again)."""
    save(server, bucket, "a.txt", b"the planned version", LOSER_TIME)
    planned = loc.stat("a.txt")
    assert planned is not None

    def refuse(status: int, code: str, then: bytes | None = None) -> None:
        def fault(seen: Seen) -> tuple[int, str] | None:
            if not seen.copy_source:
                return None
            if then is not None:
                save(server, bucket, "a.txt", then, LOSER_TIME)
            return status, code

        proxy.fault = fault

    refuse(412, "PreconditionFailed")
    with pytest.raises(FileExistsError):
        loc.copy_aside("a.txt", "kept.txt", planned)
    refuse(501, "NotImplemented")
    kept = keep_aside(loc, "a.txt", planned, ["kept.txt"], set(), stopping=None)
    copies = [s for s in proxy.seen if s.copy_source]
    assert kept.name == "kept.txt" and kept.meta.same_version(planned)
    assert server.keys(bucket, "root/")["kept.txt"] == b"the planned version"
    with pytest.raises(NotSupported):
        loc.copy_aside("a.txt", "again.txt", planned)
    assert [s for s in proxy.seen if s.copy_source] == copies, "asked again"
    fresh = through(server, proxy, bucket, "root")
    try:
        refuse(412, "PreconditionFailed", then=b"rewritten meanwhile")
        with pytest.raises(FileChanged):
            fresh.copy_aside("a.txt", "other.txt", planned)
    finally:
        fresh.close()
        proxy.fault = None
    assert set(server.keys(bucket, "root/")) == {"a.txt", "kept.txt"}
