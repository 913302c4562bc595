"""The engine keeping folders and SFTP servers identical: outages, odd names, two machines.

End to end: real engines, real folders, OpenSSH's sshd on 127.0.0.1 (and rclone's server for
the plain sync), polling every 0.2 s. Trees are compared byte for byte.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.engine import Engine
from app.engine.index import StateIndex
from app.engine.settings import EngineSettings
from app.engine.status import Activity
from app.locations import LocationOptions, open_location
from app.locations.remote.hubjournal import JOURNAL_DIR
from app.locations.sftp.location import SftpLocation
from tests.helpers import describe_trees, tree, trees_equal, wait_until, write_file
from tests.sshd_server import SftpServer

T_OLD = 1_600_000_000.0
POLL = 0.2


class Machine:
    """One FileSync: a folder, its own state, and an engine over the folder and the server."""

    def __init__(self, tmp: Path, name: str, server: SftpServer) -> None:
        self.folder = tmp / name
        self.folder.mkdir()
        self.state = tmp / f"state-{name}" / "index.sqlite"
        self.server = server
        self.engine: Engine | None = None
        self.index: StateIndex | None = None
        self.sftp: SftpLocation | None = None
        self.activity: list[Activity] = []

    def start(self) -> Engine:
        self.index = StateIndex(self.state)
        sftp = open_location(self.server.url(), LocationOptions(connect_timeout=3))
        assert isinstance(sftp, SftpLocation)
        self.sftp = sftp
        self.engine = Engine(
            [open_location(f"folder:{self.folder}"), sftp],
            self.index,
            EngineSettings(debounce=0.03, poll_interval=POLL),
        )
        self.engine.add_listener(self.activity.append)
        self.engine.start()
        return self.engine

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        if self.index is not None:
            self.index.close()
            self.index = None

    def synced(self) -> bool:
        return trees_equal(self.folder, self.server.root)

    def wait_synced(self, timeout: float = 60) -> None:
        wait_until(self.synced, timeout, lambda: describe_trees(self.folder, self.server.root))


@pytest.fixture(params=["sshd", "rclone"])
def server(request: pytest.FixtureRequest) -> SftpServer:
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]


@pytest.fixture
def machine(tmp_path: Path, server: SftpServer) -> Iterator[Machine]:
    m = Machine(tmp_path, "a", server)
    yield m
    m.stop()


def remote_write(server: SftpServer, path: str, data: str, mtime: float | None = None) -> None:
    """Another program's save on the server: on its disk (sshd) or as another SFTP client
    (rclone, which caches its folder listings)."""
    if server.flavour == "sshd":
        write_file(server.root / path, data, mtime=mtime)
        return
    other = server.location()
    try:
        with other.batch():
            stamp = time.time() if mtime is None else mtime
            other.write(path, io.BytesIO(data.encode()), int(stamp * 1e9))
    finally:
        other.close()


def remote_delete(server: SftpServer, path: str) -> None:
    other = server.location()
    try:
        other.delete(path)
    finally:
        other.close()


def test_folder_and_sftp_converge_both_ways_with_odd_names(machine: Machine) -> None:
    root = machine.server.root
    write_file(machine.folder / "local" / "a.txt", "from the folder", mtime=T_OLD)
    remote_write(machine.server, "remote/b b.txt", "from the server", mtime=T_OLD + 60)
    machine.start()
    machine.wait_synced()
    assert (root / "local" / "a.txt").stat().st_mtime == T_OLD
    assert (machine.folder / "remote" / "b b.txt").stat().st_mtime == T_OLD + 60

    write_file(machine.folder / "ünï cødé 日本" / "with spaces 🙂.txt", "odd")
    remote_write(machine.server, "remote/café crème.txt", "from the server, odd")
    (machine.folder / "local" / "a.txt").write_text("edited in the folder, longer")
    machine.wait_synced()
    assert tree(root)["ünï cødé 日本/with spaces 🙂.txt"] == b"odd"

    remote_delete(machine.server, "remote/b b.txt")
    os.rename(machine.folder / "local" / "a.txt", machine.folder / "local" / "renamed.txt")
    machine.wait_synced()
    assert not (machine.folder / "remote" / "b b.txt").exists()


@pytest.fixture
def sshd_machine(tmp_path: Path, sshd_server: SftpServer) -> Iterator[Machine]:
    m = Machine(tmp_path, "a", sshd_server)
    yield m
    m.stop()


def test_sshd_stopped_mid_sync_and_restarted_loses_nothing(sshd_machine: Machine) -> None:
    m = sshd_machine
    write_file(m.server.root / "before.txt", "on the server before", mtime=T_OLD)
    m.start()
    m.wait_synced()
    for i in range(40):
        write_file(m.folder / "burst" / f"{i:02}.bin", os.urandom(20_000))
    m.server.stop()  # while the engine is uploading the burst
    write_file(m.folder / "while-down.txt", "written during the outage")
    wait_until(lambda: any(a.action == "error" for a in m.activity), message="the outage seen")
    m.server.start()
    m.wait_synced()
    assert len(list((m.server.root / "burst").iterdir())) == 40
    assert (m.server.root / "before.txt").read_text() == "on the server before"
    assert not [p for p in (m.server.root / "burst").iterdir() if p.name.startswith(".filesync")]


def test_two_machines_converge_keep_conflict_losers_and_go_quiet(
    tmp_path: Path, sshd_server: SftpServer
) -> None:
    a, b = Machine(tmp_path, "a", sshd_server), Machine(tmp_path, "b", sshd_server)
    try:
        write_file(a.folder / "shared.txt", "from A", mtime=T_OLD)
        write_file(b.folder / "notes" / "b.txt", "from B", mtime=T_OLD)
        a.start()
        b.start()
        wait_until(lambda: trees_equal(a.folder, b.folder, sshd_server.root), 60,
                   lambda: describe_trees(a.folder, b.folder, sshd_server.root))  # fmt: skip
        b.stop()
        write_file(a.folder / "doc.txt", "A's version of the doc", mtime=T_OLD + 100)
        write_file(b.folder / "doc.txt", "B's later version", mtime=T_OLD + 200)
        a.wait_synced()
        b.start()
        wait_until(lambda: trees_equal(a.folder, b.folder, sshd_server.root), 60,
                   lambda: describe_trees(a.folder, b.folder, sshd_server.root))  # fmt: skip
        final = tree(a.folder)
        assert final["doc.txt"] == b"B's later version"
        assert b"A's version of the doc" in final.values(), "the conflict loser is kept"

        # Idle: no copies, no journal appends, only the polls' listings.
        assert a.engine is not None and b.engine is not None
        a.engine.wait_idle()
        b.engine.wait_idle()
        journals = {p.name: p.stat().st_size for p in (sshd_server.root / JOURNAL_DIR).iterdir()}
        probe = sshd_server.location()
        assert isinstance(probe, SftpLocation)
        before = probe.request_count
        probe.scan()
        per_poll = probe.request_count - before
        probe.close()
        assert a.sftp is not None
        sftp = a.sftp
        copies, start, started = (
            len(a.activity) + len(b.activity),
            sftp.request_count,
            time.monotonic(),
        )
        wait_until(lambda: sftp.request_count >= start + 5 * per_poll, message="five idle polls")
        spent, elapsed = sftp.request_count - start, time.monotonic() - started
        assert spent <= (elapsed / POLL + 2) * (per_poll + 2), (spent, per_poll, elapsed)
        assert len(a.activity) + len(b.activity) == copies
        after = {p.name: p.stat().st_size for p in (sshd_server.root / JOURNAL_DIR).iterdir()}
        assert after == journals
    finally:
        a.stop()
        b.stop()
