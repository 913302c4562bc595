"""An S3 location lands a group of copies (``write_many``) with few requests and every rule.

The small files of a group are read, checked together and PUT in parallel; on a server that
ignores conditional requests (rclone) the check is a listing of each folder of the group taken
just before the PUTs, instead of a ``HEAD`` per file (``s3/group.py``). These tests run on
rclone and moto: what the engine records, what a save made elsewhere meanwhile keeps, what
failing sources fail, and what the group costs in requests.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from app.errors import FileChanged, FileVanished
from app.locations.base import FileMeta, Location, WriteJob
from app.locations.s3 import group
from app.locations.s3.location import S3Location
from app.locations.s3.objects import Listed
from app.locations.s3.upload import PART_SIZE
from tests.s3_server import S3Server
from tests.writes import job, write_files, write_group

SECOND = 1_000_000_000


def requests(loc: Location) -> int:
    return loc.request_count  # type: ignore[attr-defined,no-any-return]


def test_a_group_lands_every_file_whole_with_its_time(loc: S3Location) -> None:
    files = {f"d{i % 3}/f{i:02d}.bin": os.urandom(i * 370) for i in range(30)}
    files["big.bin"] = os.urandom(PART_SIZE + 1)  # a part or more: streamed alone
    outcomes = write_files(loc, files)
    listing = loc.scan()
    for (path, data), outcome in zip(files.items(), outcomes, strict=True):
        recorded = outcome
        if path == "big.bin":  # a multipart upload's ETag is learned from the next listing
            recorded = FileMeta(outcome.size, outcome.mtime_ns, listing[path].tag)
        assert listing[path] == recorded  # what the engine records is what a scan reports
        assert outcome.size == len(data)
    for i, path in enumerate(files):
        assert listing[path].mtime_ns == (1_600_000_000 + i) * SECOND
        with loc.open_read(path) as f:
            assert f.read() == files[path]


def test_a_group_costs_one_put_a_file_and_one_listing_a_folder(
    server: S3Server, loc: S3Location
) -> None:
    old = write_group(loc, [job(f"d{i % 3}/f{i:02d}.txt", b"old") for i in range(30)])
    before = requests(loc)
    jobs = [job(f"d{i % 3}/f{i:02d}.txt", b"new", expected=old[i]) for i in range(30)]  # type: ignore[arg-type]
    jobs += [job(f"d{i % 3}/new{i:02d}.txt", b"n") for i in range(30)]
    outcomes = write_group(loc, jobs)
    assert all(isinstance(o, FileMeta) for o in outcomes), outcomes
    # moto honours If-Match/If-None-Match: the PUTs check themselves; rclone does not, so
    # each of the three folders is listed once instead of a HEAD per file.
    assert requests(loc) - before == 60 + (3 if server.flavour == "rclone" else 0)


def test_a_save_made_elsewhere_before_the_group_is_kept(
    server: S3Server, bucket: str, loc: S3Location
) -> None:
    with loc.batch():
        loc.write_many([job(f"d/f{i:02d}.txt", b"old") for i in range(20)])
    planned = loc.scan()
    other = server.client()
    other.put_object(Bucket=bucket, Key="root/d/f05.txt", Body=b"the user's save")
    other.put_object(Bucket=bucket, Key="root/d/g-new.txt", Body=b"a new file of theirs")
    jobs = [job(f"d/f{i:02d}.txt", b"mine", expected=planned[f"d/f{i:02d}.txt"]) for i in range(20)]
    jobs.append(job("d/g-new.txt", b"mine"))  # planned as new: nothing there
    outcomes = write_group(loc, jobs)
    assert isinstance(outcomes[5], FileChanged)
    assert isinstance(outcomes[20], FileChanged)
    assert sum(isinstance(o, FileMeta) for o in outcomes) == 19
    keys = server.keys(bucket, "root/")
    assert keys["d/f05.txt"] == b"the user's save"
    assert keys["d/g-new.txt"] == b"a new file of theirs"
    assert keys["d/f04.txt"] == b"mine"


def test_a_source_that_vanished_fails_only_its_own_job(loc: S3Location) -> None:
    def gone() -> contextlib.AbstractContextManager[BinaryIO]:
        raise FileVanished("file vanished", location="elsewhere", path="gone.txt")

    jobs = [job("a.txt", b"a"), WriteJob("gone.txt", gone, SECOND, None), job("b.txt", b"b")]
    outcomes = write_group(loc, jobs)
    assert isinstance(outcomes[0], FileMeta) and isinstance(outcomes[2], FileMeta)
    assert isinstance(outcomes[1], FileVanished)
    assert sorted(loc.scan()) == ["a.txt", "b.txt"]


def test_a_file_deleted_earlier_in_the_batch_is_written_again(
    server: S3Server, bucket: str, loc: S3Location
) -> None:
    with loc.batch():
        first = loc.write_many([job("doc.txt", b"one")])[0]
    assert isinstance(first, FileMeta)
    with loc.batch():
        loc.delete("doc.txt")
        assert isinstance(loc.write_many([job("doc.txt", b"two", expected=first)])[0], FileMeta)
    assert server.keys(bucket, "root/") == {"doc.txt": b"two"}


def test_the_group_check_lists_a_crowded_folder_only_as_far_as_it_pays(
    rclone_s3: S3Server,
) -> None:
    """Keys beyond the entries a group is worth are checked by HEAD; every answer is right."""
    bucket = rclone_s3.new_bucket()
    client = rclone_s3.client()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: client.put_object(Bucket=bucket, Key=f"p/d/k{i:04d}", Body=b"x"),
                      range(1100)))  # fmt: skip
    client.put_object(Bucket=bucket, Key="p/d/sub/deep", Body=b"in a subfolder")
    client.put_object(Bucket=bucket, Key="p/top", Body=b"12")
    loc = rclone_s3.location(bucket, "p")
    assert isinstance(loc, S3Location)
    try:
        heads: list[str] = []

        def head(path: str) -> Listed | None:
            heads.append(path)
            return loc._writer.head(path)

        def check(paths: list[str]) -> group.Current:
            heads.clear()
            return group.current_objects(loc._reader.call, bucket, "p/", paths, head)

        # A run of neighbours: one listing from the first to the last, no HEAD.
        before = requests(loc)
        found = check([f"d/k{i:04d}" for i in range(200, 300)] + ["d/k0300x"])
        assert requests(loc) - before == 1 and not heads
        assert found["d/k0300x"] is None and all(found[f"d/k{i:04d}"] for i in range(200, 300))
        # Keys far apart: the listing stops after 10 entries a key (50 here); the keys past
        # it, and the folder with only two keys, are HEADed.
        paths = ["d/k0000", "d/k0003", "d/k0500", "d/k1099", "d/missing", "top", "nothing"]
        before = requests(loc)
        found = check(paths)
        assert {p for p, item in found.items() if item is not None} == set(paths) - {
            "d/missing",
            "nothing",
        }
        top = found["top"]
        assert top is not None and top.size == 2
        assert sorted(heads) == ["d/k0500", "d/k1099", "d/missing", "nothing", "top"]
        assert requests(loc) - before == 1 + len(heads)
    finally:
        loc.close()
