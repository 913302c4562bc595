"""Two machines through one FTP hub whose listing has only 1-second times.

"Machine A" is an engine over folder A and the hub, "machine B" another engine over folder B
and the same hub path, each with its own state index. A saves the same file twice within one
second with the same size: the hub's listing shows the same size and the same second for both
uploads, so only the journal each FileSync keeps in the hub's ``.filesync/`` tells B that the
hub's file changed. Both server flavours: LIST + MDTM (vsftpd-like) and MLSD (pyftpdlib's
``unique`` fact is an inode, which a later upload may reuse).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.locations import LocationOptions
from tests.engine_fixtures import Rig
from tests.ftp_server import ThreadedFtpServer
from tests.helpers import describe_trees, tree, wait_until

#: A whole second in the past; the saves below land at fractions of it.
T_SECOND = float(int(time.time()) - 3600)


def save(folder: Path, name: str, data: bytes, mtime: float) -> None:
    """Save like an editor does: write a temp file, stamp it, rename it over the old one."""
    temp = folder / f"~{name}.tmp"
    temp.write_bytes(data)
    os.utime(temp, (mtime, mtime))
    os.replace(temp, folder / name)


class Machine(Rig):
    """One FileSync: a folder, its own state index, and an engine over the folder and hub."""

    @classmethod
    def over(cls, tmp: Path, name: str, server: ThreadedFtpServer) -> Machine:
        folder = tmp / name
        folder.mkdir()
        return cls(
            tmp,
            [folder],
            [server.url()],
            state_file=tmp / f"state-{name}" / "index.sqlite",
            options=LocationOptions(connect_timeout=5),
        )

    @property
    def folder(self) -> Path:
        return self.roots[0]


@pytest.fixture(params=["list", "full"])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThreadedFtpServer]:
    server = ThreadedFtpServer(tmp_path / "hub", request.param)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def machines(tmp_path: Path, hub: ThreadedFtpServer) -> Iterator[tuple[Machine, Machine]]:
    a, b = Machine.over(tmp_path, "a", hub), Machine.over(tmp_path, "b", hub)
    yield a, b
    a.stop()
    b.stop()


def hub_has(hub: ThreadedFtpServer, data: bytes) -> bool:
    return tree(hub.root).get("doc.txt") == data


def hub_second(hub: ThreadedFtpServer) -> int:
    """The second the hub's listing shows for the doc (the server's clock on a LIST server)."""
    return int((hub.root / "doc.txt").stat().st_mtime)


def two_saves_in_one_second(a: Machine, b: Machine, hub: ThreadedFtpServer, stop_b: bool) -> bytes:
    """A saves three times (same size); B pulls the first; the hub shows one second for all.

    A LIST server stamps an upload with its own clock, so the two uploads must land within
    one second: start at the top of a second and try again (B running again) if they did not.
    Returns A's last save.
    """
    for attempt in range(8):
        first = b"save %02d-1 of the doc" % attempt
        last = b"save %02d-2 of the doc" % attempt
        if b.engine is None:
            b.start()
        wait_until(lambda: time.time() % 1 < 0.05, message="the top of a second", interval=0.005)
        save(a.folder, "doc.txt", first, T_SECOND + 0.1 + attempt / 100)
        wait_until(lambda d=first: hub_has(hub, d), message="A uploads the first save")  # type: ignore[misc]
        wait_until(lambda d=first: tree(b.folder).get("doc.txt") == d, message="B pulls it")  # type: ignore[misc]
        second = hub_second(hub)
        if stop_b:
            b.stop()
        # Two more saves: on an MLSD server the last upload may reuse the first one's inode.
        for n, data in enumerate((b"save %02d-x of the doc" % attempt, last)):
            save(a.folder, "doc.txt", data, T_SECOND + 0.4 + n / 5 + attempt / 100)
            wait_until(lambda d=data: hub_has(hub, d), message="A uploads a save")  # type: ignore[misc]
        if hub_second(hub) == second:
            return last
    pytest.fail("the machine is too slow to land two uploads within one second")


def test_same_size_saves_within_a_second_reach_the_other_machine(
    machines: tuple[Machine, Machine], hub: ThreadedFtpServer
) -> None:
    a, b = machines
    a.start()
    last = two_saves_in_one_second(a, b, hub, stop_b=False)
    wait_until(
        lambda: tree(b.folder).get("doc.txt") == last,
        timeout=30,
        message=lambda: "B gets A's last save: " + describe_trees(a.folder, b.folder, hub.root),
    )


def test_once_reports_converged_only_when_it_is_true(
    machines: tuple[Machine, Machine], hub: ThreadedFtpServer
) -> None:
    a, b = machines
    a.start()
    last = two_saves_in_one_second(a, b, hub, stop_b=True)
    converged = b.once()
    same = tree(b.folder) == tree(hub.root)
    assert converged == same, f"--once said converged={converged}; " + describe_trees(
        b.folder, hub.root
    )
    assert tree(b.folder).get("doc.txt") == last
    assert b.once()


def test_edit_right_after_our_own_upload_is_seen(
    machines: tuple[Machine, Machine], hub: ThreadedFtpServer
) -> None:
    """B uploads, A replaces that upload within the same second before B lists the hub again.

    B's index holds its own upload without a content tag (learning one would cost a listing
    per upload), so only the journal tells B that the same-size, same-second file changed.
    """
    a, b = machines
    save(b.folder, "doc.txt", b"B's save of the doc.", T_SECOND + 0.1)
    assert b.once()
    assert a.once()
    assert tree(a.folder) == tree(b.folder)
    save(a.folder, "doc.txt", b"A's edit of the doc.", T_SECOND + 0.5)
    assert a.once()
    assert hub_has(hub, b"A's edit of the doc.")
    converged = b.once()
    assert converged == (tree(b.folder) == tree(hub.root)), describe_trees(b.folder, hub.root)
    assert tree(b.folder) == tree(a.folder), describe_trees(a.folder, b.folder, hub.root)
