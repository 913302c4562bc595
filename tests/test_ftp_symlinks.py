"""A folder on an FTP server replaced by a symbolic link: its files are held, never deleted.

The FTP side of issue 8 item 1: a user on the server moves ``photos/`` to another disk and
leaves a link in its place. The listing must not make the photos look deleted (the deletes
would reach every other location). pyftpdlib, the real server used here, shows such a link as
an ``l`` line in LIST; its MLSD follows the link and refuses to list a target outside its root.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.locations.ftp.listing import parse_list_line, parse_mlsd_line
from tests.ftp_server import ThreadedFtpServer
from tests.helpers import tree, wait_until, write_file
from tests.links import swap_in_link
from tests.test_ftp_sync import SyncRig

PHOTOS = {"photos/1.jpg": b"one", "photos/sub/2.jpg": b"two"}


@pytest.fixture(params=["full", "list"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SyncRig]:
    server = ThreadedFtpServer(tmp_path / "ftp-root", request.param)
    server.start()
    rig = SyncRig(tmp_path, server)
    yield rig
    rig.close()
    server.stop()


def link_warnings(caplog: pytest.LogCaptureFixture, link: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and f"{link} is a symbolic link" in r.getMessage()
    ]


def test_listings_mark_symbolic_links() -> None:
    entry = parse_mlsd_line("type=OS.unix=symlink;modify=20240101000000; photos")
    assert entry is not None and entry.is_link and not (entry.is_file or entry.is_dir)
    entry = parse_mlsd_line("type=OS.unix=slink:/mnt/disk;modify=20240101000000; photos")
    assert entry is not None and entry.is_link
    line = "lrwxrwxrwx   1 root     root           24 Nov 30 22:16 photos -> /mnt/disk/photos"
    entry = parse_list_line(line, now=1_800_000_000)
    assert entry is not None and entry.is_link and entry.name == "photos"
    entry = parse_mlsd_line("type=dir;modify=20240101000000; photos")
    assert entry is not None and not entry.is_link


def test_server_folder_replaced_by_a_link_is_held_not_deleted(
    rig: SyncRig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for path, data in PHOTOS.items():
        write_file(rig.folder / path, data)
    write_file(rig.folder / "top.txt", "top")
    rig.engine.start()
    rig.wait_converged()
    caplog.set_level(logging.WARNING)
    swap_in_link(rig.server.root / "photos", tmp_path / "disk")
    # Later changes still sync both ways, so the link was seen by at least one full poll.
    write_file(rig.folder / "after.txt", "other paths still sync")
    write_file(rig.server.root / "remote.txt", "from the server")
    wait_until(
        lambda: (rig.server.root / "after.txt").exists() and (rig.folder / "remote.txt").exists(),
        timeout=60,
        message=lambda: (
            f"folder {sorted(tree(rig.folder))}, server {sorted(tree(rig.server.root))}"
        ),
    )
    assert tree(rig.folder) == {
        **PHOTOS,
        "top.txt": b"top",
        "after.txt": b"other paths still sync",
        "remote.txt": b"from the server",
    }
    assert tree(tmp_path / "disk") == {"1.jpg": b"one", "sub/2.jpg": b"two"}
    warnings = link_warnings(caplog, "photos")
    assert len(warnings) == 1, warnings
    assert "not deleted elsewhere" in warnings[0]
