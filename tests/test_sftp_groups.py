"""An SFTP location lands a group of copies in a few round trips, with every per-file rule.

The small files of a group are opened, written, stamped, checked and renamed all at once
(``sftp/group.py``); these tests check what a user sees of that, on OpenSSH and on rclone:
every file whole with its time, a save made on the server during the group kept (its job
fails alone), a vanished source failing only its own job, big files streamed as before.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from typing import BinaryIO

from app.errors import FileChanged, FileVanished
from app.locations.base import FileMeta, WriteJob
from app.locations.sftp.location import SftpLocation
from tests.helpers import tree
from tests.sshd_server import SftpServer
from tests.writes import job, write_files

SECOND = 1_000_000_000


def test_a_group_lands_every_file_whole_with_its_time(
    sftp_served: tuple[SftpLocation, SftpServer],
) -> None:
    loc, server = sftp_served
    files = {f"d{i % 7}/sub/f{i}.bin": os.urandom(i * 370) for i in range(60)}
    files["big.bin"] = os.urandom(700_000)  # past the group's limit: streamed alone
    outcomes = write_files(loc, files)
    listing = loc.scan()
    for (path, data), outcome in zip(files.items(), outcomes, strict=True):
        assert listing[path] == outcome  # what the engine records is what a scan reports
        assert outcome.size == len(data)
    for i, path in enumerate(files):
        assert listing[path].mtime_ns == (1_600_000_000 + i) * SECOND
        with loc.open_read(path) as f:
            assert f.read() == files[path]
    if server.flavour == "sshd":
        assert tree(server.root) == files
        assert not list(server.root.rglob(".filesync-tmp-*")), "temp files left behind"


def test_a_file_saved_on_the_server_during_its_group_is_kept(
    sftp_served: tuple[SftpLocation, SftpServer],
) -> None:
    loc, server = sftp_served
    with loc.batch():
        loc.write_many([job("doc.txt", b"old")])
    planned = loc.stat("doc.txt")
    other = server.location()

    @contextlib.contextmanager
    def saved_meanwhile() -> Iterator[BinaryIO]:
        with other.batch():
            other.write("doc.txt", io.BytesIO(b"the user's save, made during the group"), SECOND)
        yield io.BytesIO(b"other")

    jobs = [job(f"f{i}", b"x" * i) for i in range(20)]
    jobs.insert(10, WriteJob("doc.txt", saved_meanwhile, 5 * SECOND, planned))
    try:
        outcomes = loc.write_many(jobs)
    finally:
        other.close()
    assert isinstance(outcomes[10], FileChanged)
    with loc.open_read("doc.txt") as f:
        assert f.read() == b"the user's save, made during the group"
    assert sum(isinstance(o, FileMeta) for o in outcomes) == 20


def test_a_source_that_vanished_fails_only_its_own_job(
    sftp_served: tuple[SftpLocation, SftpServer],
) -> None:
    loc, _ = sftp_served

    def gone() -> contextlib.AbstractContextManager[BinaryIO]:
        raise FileVanished("file vanished", location="elsewhere", path="gone.txt")

    jobs = [job("a.txt", b"a"), WriteJob("gone.txt", gone, SECOND, None), job("b.txt", b"b")]
    outcomes = loc.write_many(jobs)
    assert isinstance(outcomes[0], FileMeta) and isinstance(outcomes[2], FileMeta)
    assert isinstance(outcomes[1], FileVanished)
    assert sorted(loc.scan()) == ["a.txt", "b.txt"]


def test_a_folder_removed_behind_the_groups_back_is_made_again(sshd_server: SftpServer) -> None:
    loc = sshd_server.location()
    try:
        assert isinstance(loc.write_many([job("d/a.txt", b"a")])[0], FileMeta)
        (sshd_server.root / "d" / "a.txt").unlink()
        (sshd_server.root / "d").rmdir()
        first = loc.write_many([job("d/b.txt", b"b")])[0]
        if not isinstance(first, FileMeta):  # the folder was thought to exist: next time
            assert isinstance(loc.write_many([job("d/b.txt", b"b")])[0], FileMeta)
        assert (sshd_server.root / "d" / "b.txt").read_bytes() == b"b"
    finally:
        loc.close()
