"""The engine keeping a folder and an FTP server identical, through outages.

End to end: real engine, real folder, real pyftpdlib server on 127.0.0.1, polling every
0.2 s. Trees are compared byte for byte (FileSync's own files excluded).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.engine import Engine
from app.engine.index import StateIndex
from app.engine.settings import EngineSettings
from app.engine.status import Activity
from app.locations import LocationOptions, open_location
from app.locations.ftp.location import FtpLocation
from tests.ftp_server import ThreadedFtpServer
from tests.helpers import describe_trees, tree, trees_equal, wait_until, write_file

T_OLD = 1_600_000_000.0


class SyncRig:
    """A folder, an FTP server and an engine over both."""

    def __init__(self, tmp: Path, server: ThreadedFtpServer) -> None:
        self.folder = tmp / "folder"
        self.folder.mkdir()
        self.server = server
        self.index = StateIndex(tmp / "state" / "index.sqlite")
        self.ftp = open_location(server.url(), LocationOptions(connect_timeout=2))
        assert isinstance(self.ftp, FtpLocation)
        self.engine = Engine(
            [open_location(f"folder:{self.folder}"), self.ftp],
            self.index,
            EngineSettings(debounce=0.03, poll_interval=0.2),
        )
        self.activity: list[Activity] = []
        self.engine.add_listener(self.activity.append)

    def converged(self) -> bool:
        return trees_equal(self.folder, self.server.root)

    def wait_converged(self, timeout: float = 60) -> None:
        wait_until(
            self.converged,
            timeout=timeout,
            message=lambda: describe_trees(self.folder, self.server.root),
        )

    def copies(self) -> int:
        return sum(1 for a in self.activity if a.action == "copied")

    def close(self) -> None:
        self.engine.stop()
        self.index.close()


@pytest.fixture
def sync(tmp_path: Path, ftp_server: ThreadedFtpServer) -> Iterator[SyncRig]:
    rig = SyncRig(tmp_path, ftp_server)
    yield rig
    rig.close()


@pytest.fixture
def list_sync(tmp_path: Path, ftp_list_server: ThreadedFtpServer) -> Iterator[SyncRig]:
    rig = SyncRig(tmp_path, ftp_list_server)
    yield rig
    rig.close()


def test_folder_and_ftp_converge_both_ways(sync: SyncRig) -> None:
    write_file(sync.folder / "local" / "a.txt", "from the folder", mtime=T_OLD)
    write_file(sync.server.root / "remote" / "b.txt", "from the server", mtime=T_OLD + 60)
    sync.engine.start()
    assert sync.converged(), describe_trees(sync.folder, sync.server.root)
    assert (sync.server.root / "local" / "a.txt").stat().st_mtime == T_OLD
    assert (sync.folder / "remote" / "b.txt").stat().st_mtime == T_OLD + 60

    write_file(sync.folder / "live-local.txt", "new here")
    write_file(sync.server.root / "remote" / "live-remote.txt", "new there")
    (sync.folder / "local" / "a.txt").write_text("edited in the folder, longer")
    sync.wait_converged()
    assert tree(sync.server.root)["local/a.txt"] == b"edited in the folder, longer"

    (sync.server.root / "remote" / "b.txt").unlink()
    sync.wait_converged()
    assert not (sync.folder / "remote" / "b.txt").exists()


def test_server_without_mfmt_does_not_ping_pong(list_sync: SyncRig) -> None:
    write_file(list_sync.folder / "d" / "a.txt", "one", mtime=T_OLD)
    list_sync.engine.start()
    list_sync.wait_converged()
    list_sync.engine.wait_idle()
    copies = list_sync.copies()
    requests = list_sync.ftp.request_count
    # Let a good number of polls go by; none may bring our own upload back as an edit.
    wait_until(lambda: list_sync.ftp.request_count > requests + 40, message="polls")
    list_sync.engine.wait_idle()
    assert list_sync.copies() == copies
    assert (list_sync.folder / "d" / "a.txt").stat().st_mtime == T_OLD


def test_server_stopped_mid_sync_and_restarted_loses_nothing(sync: SyncRig) -> None:
    write_file(sync.server.root / "before.txt", "on the server before", mtime=T_OLD)
    sync.engine.start()
    sync.wait_converged()

    for i in range(40):
        write_file(sync.folder / "burst" / f"{i:02}.bin", os.urandom(20_000))
    sync.server.stop()  # while the engine is uploading the burst
    write_file(sync.folder / "while-down.txt", "written during the outage")
    sync.server.start()

    sync.wait_converged()
    assert len(list((sync.server.root / "burst").iterdir())) == 40
    assert (sync.server.root / "before.txt").read_text() == "on the server before"


def test_edit_made_during_an_outage_reaches_the_server(sync: SyncRig) -> None:
    write_file(sync.server.root / "before.txt", "on the server before", mtime=T_OLD)
    sync.engine.start()
    sync.wait_converged()
    sync.server.stop()
    (sync.folder / "before.txt").write_text("edited during the outage")
    wait_until(lambda: any(a.action == "error" for a in sync.activity), message="outage seen")
    sync.server.start()
    sync.wait_converged(timeout=15)
