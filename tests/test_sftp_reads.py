"""Copies from an SFTP location read a group's small files together, each as planned.

When the engine copies a group of files from an SFTP server, the location is told the whole
group first (``read_ahead``) and fetches its small files in two round trips for all
(``sftp/fetch.py``). These tests check what that must never change, on OpenSSH and on
rclone: every file's bytes exactly, a file saved or deleted on the server after the plan
reported as such (never copied as the planned version), big files streamed as before.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from app.engine.engine import Engine
from app.engine.index import StateIndex
from app.engine.settings import EngineSettings
from app.errors import FileChanged, FileVanished, LocationUnavailable
from app.locations import LocationOptions, open_location
from app.locations.base import FileMeta
from app.locations.sftp.location import SftpLocation
from tests.helpers import describe_trees, trees_equal, wait_until
from tests.sshd_server import SftpServer
from tests.writes import job

SECOND = 1_000_000_000
#: Around the 32 KiB read size, and up to the read-ahead's limit (256 KiB); 300 KiB is past it.
SIZES = [0, 1, 4096, 32767, 32768, 32769, 100_000, 256 * 1024, 300 * 1024]


def upload(loc: SftpLocation, files: dict[str, bytes]) -> None:
    jobs = [job(path, data, 1_600_000_000 + i) for i, (path, data) in enumerate(files.items())]
    with loc.batch():
        assert all(isinstance(o, FileMeta) for o in loc.write_many(jobs))


def test_a_group_read_ahead_serves_every_small_file_without_asking_again(
    sftp_served: tuple[SftpLocation, SftpServer],
) -> None:
    loc, _ = sftp_served
    files = {f"d{n % 3}/f{n}.bin": os.urandom(size) for n, size in enumerate(SIZES)}
    upload(loc, files)
    planned = loc.scan()
    small = [p for p in files if len(files[p]) <= 256 * 1024]
    with loc.read_ahead(list(planned.items())):
        requests = loc.request_count
        for path in small:
            with loc.open_read(path) as f:
                assert f.read() == files[path], path
        assert loc.request_count == requests, "a small file was asked for again"
        assert loc.read_ahead_served == len(small)
        with loc.open_read("d2/f8.bin") as f:  # past the limit: streamed on its own
            assert f.read() == files["d2/f8.bin"]
    with loc.open_read("d0/f0.bin") as f:  # outside the block: asked for again
        assert f.read() == b""
    assert loc.read_ahead_served == len(small)


def test_a_file_saved_or_deleted_since_the_plan_is_never_read_as_the_planned_version(
    sftp_served: tuple[SftpLocation, SftpServer],
) -> None:
    loc, server = sftp_served
    upload(loc, {"same.txt": b"same", "saved.txt": b"old", "resized.txt": b"old", "gone.txt": b"x"})
    planned = loc.scan()
    other = server.location()
    try:
        with other.batch():
            other.write("saved.txt", io.BytesIO(b"new"), 1_700_000_000 * SECOND)  # same size
            other.write("resized.txt", io.BytesIO(b"longer now"), 1_600_000_002 * SECOND)
        other.delete("gone.txt")
    finally:
        other.close()
    with loc.read_ahead(list(planned.items())):
        with loc.open_read("same.txt") as f:
            assert f.read() == b"same"
        for path in ("saved.txt", "resized.txt"):
            with pytest.raises(FileChanged), loc.open_read(path):
                pass
        with pytest.raises(FileVanished), loc.open_read("gone.txt"):
            pass


def test_a_connection_lost_before_the_read_ahead_costs_nothing_but_speed(
    sshd_server: SftpServer,
) -> None:
    loc = sshd_server.location()
    assert isinstance(loc, SftpLocation)
    try:
        upload(loc, {"a.txt": b"a", "b.txt": b"bb"})
        planned = loc.scan()
        sshd_server.stop()
        with loc.read_ahead(list(planned.items())):  # fetches nothing, raises nothing
            sshd_server.start()

            def read_alone() -> bool:  # over a new connection, once the backoff allows
                try:
                    with loc.open_read("b.txt") as f:
                        return f.read() == b"bb"
                except LocationUnavailable:
                    return False

            wait_until(read_alone, 30)
        assert loc.read_ahead_served == 0
    finally:
        loc.close()


def test_the_engine_reads_a_group_copied_from_the_server_ahead(
    tmp_path: Path, sshd_server: SftpServer
) -> None:
    files = {f"d{i % 4}/f{i}.txt": os.urandom(i * 97) for i in range(300)}
    seeded = sshd_server.location()
    assert isinstance(seeded, SftpLocation)
    try:
        seeded.adopt(has_history=False)
        upload(seeded, files)
    finally:
        seeded.close()
    folder = tmp_path / "folder"
    folder.mkdir()
    sftp = open_location(sshd_server.url(), LocationOptions(connect_timeout=5))
    assert isinstance(sftp, SftpLocation)
    index = StateIndex(tmp_path / "state" / "index.sqlite")
    engine = Engine(
        [open_location(f"folder:{folder}"), sftp],
        index,
        EngineSettings(debounce=0.03, poll_interval=0.2),
    )
    engine.start()
    try:
        root = sshd_server.root
        wait_until(lambda: trees_equal(folder, root), 60, lambda: describe_trees(folder, root))
        assert sftp.read_ahead_served == len(files)
        for i, path in enumerate(files):
            assert (folder / path).stat().st_mtime_ns == (1_600_000_000 + i) * SECOND
    finally:
        engine.stop()
        index.close()
