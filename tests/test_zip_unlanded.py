"""An archive rewrite that fails (its disk is full) must not leave the index claiming its copies.

A ZIP location stages its writes and lands them with one rewrite when the engine's batch ends.
If that rewrite fails and FileSync then stops, the staged files never reach the archive; had the
index saved their rows, the next run would read "in the index, gone from the archive" as a
delete and delete the user's originals everywhere else.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.disks import fill, small_tmpfs
from tests.engine_fixtures import Rig
from tests.helpers import write_file


def test_a_rewrite_that_never_landed_deletes_nothing_at_the_next_start(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.mkdir()
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        archive = disk / "archive.zip"
        rig = Rig(tmp_path, [a], extra_specs=[f"zip:{archive}"])
        for n in range(4):
            write_file(a / f"old{n}.bin", os.urandom(120_000))
        assert rig.once()
        # Room to stage a new file beside the archive, but not to write the new archive.
        filler = fill(disk, leave=250_000)
        write_file(a / "new.bin", os.urandom(100_000))
        try:
            rig.once()
        except Exception:  # before the fix the failed rewrite escaped the sync
            pass
        finally:
            rig.stop()
        filler.unlink()
        rig.once()
        assert (a / "new.bin").is_file(), "a file whose copy never landed was deleted"
        assert rig.once(), "the archive did not catch up once there was room"
