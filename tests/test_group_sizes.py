"""How big the groups of copies get in an initial sync, per kind of location (issue 11).

While the engine waits for every answer, a folder takes its copies in groups of up to
``GROUP_FILES_WAITED`` (a group starts and ends with copies that overlap no durability pass;
it is written in parts whose passes overlap the next part's copies); a location whose
group is checked by one listing before its uploads (S3) keeps groups of ``GROUP_FILES``,
since a bigger group would widen the window in which another machine's upload goes unseen.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.engine import copies
from app.locations import LocationOptions, open_location
from app.locations.base import FileMeta, Location, WriteJob, WriteOutcome
from tests.engine_fixtures import run_once
from tests.helpers import tree, write_file
from tests.s3_server import S3Server
from tests.sshd_server import SftpServer
from tests.writes import job

FILES = 1500
T0 = 1_600_000_000  # seconds


def _noting_groups(location: Location) -> list[int]:
    """Wrap ``location``'s group writes (the real ones still run) to note each group's size
    (once: one of them may call the other)."""
    sizes: list[int] = []
    inside: list[bool] = []
    for name in ("write_many", "write_many_unsettled"):
        real = getattr(location, name)

        def noted(
            jobs: Sequence[WriteJob], *, parallel_reads: bool = False, _real: Any = real
        ) -> list[WriteOutcome]:
            if not inside:
                sizes.append(len(jobs))
            inside.append(True)
            try:
                return _real(jobs, parallel_reads=parallel_reads)  # type: ignore[no-any-return]
            finally:
                inside.pop()

        setattr(location, name, noted)
    return sizes


def test_s3_keeps_small_groups_in_an_initial_sync_beside_a_folder(
    tmp_path: Path, rclone_s3: S3Server
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    files = {f"d{i % 5}/f{i:04d}.txt": f"file {i}".encode() for i in range(FILES)}
    for rel, data in files.items():
        write_file(a / rel, data)
    b.mkdir()
    folder_b = open_location(f"folder:{b}")
    bucket = open_location(
        rclone_s3.url(rclone_s3.new_bucket(), "root"), LocationOptions(connect_timeout=5)
    )
    folder_sizes, s3_sizes = _noting_groups(folder_b), _noting_groups(bucket)
    run_once([open_location(f"folder:{a}"), folder_b, bucket], tmp_path / "state" / "index.sqlite")
    assert tree(b) == files
    assert sum(folder_sizes) == sum(s3_sizes) == FILES
    assert max(folder_sizes) <= copies.GROUP_FILES_WAITED, folder_sizes
    assert max(s3_sizes) <= copies.GROUP_FILES, s3_sizes  # its listing's window stays short


def test_a_group_spread_over_many_folders_stays_within_the_usual_descriptor_limit(
    tmp_path: Path,
) -> None:
    """2,000 files, one per folder, into two folders under a limit of 1,024 open files (a
    desktop's usual one): a group of 1,024 kept a descriptor for each of its folders until its
    renames, and two targets written at once ran out of them (EMFILE, half the files missing)."""
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    files = {f"p{i:05d}/f.txt": f"{i}".encode() for i in range(2000)}
    for rel, data in files.items():
        write_file(a / rel, data)
    b.mkdir()
    c.mkdir()
    log = tmp_path / "run.log"
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = min(1024, hard)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))

    args = ["run", f"folder:{a}", f"folder:{b}", f"folder:{c}", "--once"]
    with open(log, "wb") as out:
        run = subprocess.run(
            [sys.executable, "-m", "app", "--state", str(tmp_path / "state"), *args],
            stdout=out,
            stderr=out,
            preexec_fn=limited,
            timeout=300,
            check=False,
        )
    text = log.read_text(errors="replace")
    assert "Too many open files" not in text, text[-2000:]
    assert run.returncode == 0, text[-2000:]
    assert tree(b) == files and tree(c) == files


def test_a_folder_takes_small_groups_from_a_server_that_reads_them_ahead(
    tmp_path: Path, sshd_server: SftpServer
) -> None:
    """An SFTP source opens every file of a group on the server at once to read it ahead: a
    group of 1,024 would ask for more handles than an sftp-server usually has."""
    files = {f"d{i % 4}/f{i:04d}.txt": f"file {i}".encode() for i in range(FILES)}
    seeded = sshd_server.location()
    try:
        seeded.adopt(has_history=False)
        jobs = [job(path, data, T0 + i) for i, (path, data) in enumerate(files.items())]
        with seeded.batch():
            assert all(isinstance(o, FileMeta) for o in seeded.write_many(jobs))
    finally:
        seeded.close()
    b, c = tmp_path / "b", tmp_path / "c"
    b.mkdir()
    c.mkdir()
    folder_b = open_location(f"folder:{b}")
    sizes = _noting_groups(folder_b)
    sftp = open_location(sshd_server.url(), LocationOptions(connect_timeout=5))
    run_once([sftp, folder_b, open_location(f"folder:{c}")], tmp_path / "state" / "index.sqlite")
    assert tree(b) == files
    assert sum(sizes) == FILES
    assert max(sizes) <= copies.GROUP_FILES, sizes
