"""How big the groups of copies get in an initial sync, per kind of location (issue 11).

While the engine waits for every answer, a folder takes its copies in groups of up to
``GROUP_FILES_WAITED`` (a group costs it a ``syncfs``, whatever its size); a location whose
group is checked by one listing before its uploads (S3) keeps groups of ``GROUP_FILES``,
since a bigger group would widen the window in which another machine's upload goes unseen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.engine import copies
from app.engine.engine import Engine
from app.engine.index import StateIndex
from app.engine.settings import EngineSettings
from app.locations import LocationOptions, open_location
from app.locations.base import Location, WriteJob, WriteOutcome
from tests.helpers import tree, write_file
from tests.s3_server import S3Server

FILES = 1500


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
    index = StateIndex(tmp_path / "state" / "index.sqlite")
    engine = Engine([open_location(f"folder:{a}"), folder_b, bucket], index, EngineSettings())
    try:
        engine.start(watch=False)
        assert engine.converged()
    finally:
        engine.stop()
        index.close()
    assert tree(b) == files
    assert sum(folder_sizes) == sum(s3_sizes) == FILES
    assert max(folder_sizes) <= copies.GROUP_FILES_WAITED, folder_sizes
    assert max(s3_sizes) <= copies.GROUP_FILES, s3_sizes  # its listing's window stays short
