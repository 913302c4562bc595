"""A save made in the target while the source's edit is on its way there is a concurrent edit.

The winner's copy replaces the target's name only if it still holds the version planned, so a
save landing meanwhile makes that copy fail ("changed while syncing"). The two edits were made
at the same time and neither saw the other: they must end as a conflict, the newer one under
the name and the other kept as a conflict copy, in every location. Nothing may be lost: an edit
made on a server has no trash to fall back on.

Real engines over a real source folder whose read of the file waits at a gate (see
:mod:`tests.test_conflict_keeps_name`), and a target of each kind. A folder and an SFTP server
take their copies in groups, after the decision's index rows were written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.ftp_server import ThreadedFtpServer
from tests.helpers import tree
from tests.s3_server import S3Server
from tests.sshd_server import SftpServer
from tests.test_conflict_keeps_name import (
    LOSER,
    NAME,
    WINNER,
    Conflict,
    Target,
    conflict_copies,
    folder_target,
    s3_target,
    zip_target,
)

SAVED = b"saved in the target while the source's edit was on its way " * 30
#: The save is the newest edit of all (latest-write-wins picks it).
SAVED_AT = 1_800_000_000


def _saved_by_rename(target: Target, root: Path) -> Target:
    """``target`` whose user's editor saves into a temporary file renamed over the name."""

    def save(data: bytes, mtime: float) -> None:
        spare = root / ".doc.txt.swp"
        spare.write_bytes(data)
        os.utime(spare, (mtime, mtime))
        os.replace(spare, root / NAME)

    return replace(target, save=save)


@pytest.fixture(params=["folder", "zip", "ftp", "sftp", "s3"])
def racing_target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """A target of each kind; where its files are local ones, saved by rename (as editors do),
    so the save is a new file and never writes into the one the engine holds."""
    if request.param == "s3":
        moto: S3Server = request.getfixturevalue("moto_s3")
        return s3_target(moto)
    if request.param == "zip":
        return zip_target(tmp_path)
    if request.param == "folder":
        root = tmp_path / "target"
        return _saved_by_rename(folder_target(root), root)
    server: ThreadedFtpServer | SftpServer = request.getfixturevalue(
        "ftp_server" if request.param == "ftp" else "sshd_server"
    )
    target = replace(folder_target(server.root), spec=server.url())
    return _saved_by_rename(target, server.root)


@pytest.fixture(params=[True, False], ids=["after-a-conflict", "after-an-edit"])
def race(
    request: pytest.FixtureRequest, tmp_path: Path, racing_target: Target
) -> Iterator[tuple[Conflict, set[bytes]]]:
    """The source edited, and the target too (a conflict) or not (a plain copy); with the
    versions the outcome must keep as conflict copies."""
    c = Conflict(tmp_path, racing_target, loser=LOSER if request.param else None)
    yield c, ({WINNER, LOSER} if request.param else {WINNER})
    c.close()


def test_a_save_made_while_the_edit_is_on_its_way_ends_as_a_conflict(
    race: tuple[Conflict, set[bytes]],
) -> None:
    c, kept = race
    with c.running_gated(fail=False):
        c.target.save(SAVED, SAVED_AT)
    assert c.target.files()[NAME] == SAVED, "the save was overwritten"
    for _ in range(3):
        if c.run_once():
            break
    else:
        pytest.fail("the syncs after the save did not converge")
    for where, files in (("target", c.target.files()), ("source", tree(c.source_root))):
        assert files[NAME] == SAVED, f"{where}: the newest save does not hold the name"
        copies = sorted(conflict_copies(files).values())
        assert copies == sorted(kept), f"{where}: conflict copies {sorted(files)}"
