"""What every server kind does alike, against real servers: pyftpdlib and OpenSSH's sshd.

An outage is an error, never an empty listing (that would delete everywhere else), and the
location works again once the server is back; a root folder that is not there is not made;
a temp file a crashed upload left behind is removed once it is old.
"""

from __future__ import annotations

import os
import time

import pytest

from app.errors import LocationUnavailable
from app.locations import LocationOptions, open_location
from tests.ftp_server import ThreadedFtpServer
from tests.helpers import wait_until
from tests.sshd_server import SftpServer
from tests.writes import write_bytes

Server = ThreadedFtpServer | SftpServer


@pytest.fixture(params=["ftp", "sshd"])
def server(request: pytest.FixtureRequest) -> Server:
    """A running server of each kind (its fixture stops it)."""
    served = request.getfixturevalue(f"{request.param}_server")
    assert isinstance(served, ThreadedFtpServer | SftpServer)
    return served


def _url_of(server: Server, folder: str) -> str:
    """The URL of ``folder`` in the server's root (an FTP login starts there, sshd at /)."""
    if isinstance(server, ThreadedFtpServer):
        return server.url(path=f"/{folder}")
    return server.url(path=str(server.root / folder))


def test_stopped_server_raises_unavailable_then_reconnects(server: Server) -> None:
    loc = server.location(timeout=3)
    try:
        meta = write_bytes(loc, "kept.txt", b"kept")
        server.stop()
        with pytest.raises(LocationUnavailable):
            loc.scan()  # never {}: that would delete kept.txt everywhere else
        with pytest.raises(LocationUnavailable):
            loc.stat_many(["kept.txt"])
        server.start()
        wait_until(
            lambda: meta.same_version(loc.scan().get("kept.txt")), message="scan after restart"
        )
        assert write_bytes(loc, "after.txt", b"after").size == 5
    finally:
        loc.close()


def test_missing_root_folder_is_unavailable_not_created(server: Server) -> None:
    loc = open_location(_url_of(server, "not-there"), LocationOptions(connect_timeout=5))
    with pytest.raises(LocationUnavailable, match="does not exist"):
        loc.open()
    loc.close()
    assert not (server.root / "not-there").exists()


def test_temp_file_left_by_a_crashed_upload_is_removed(server: Server) -> None:
    stale = server.root / "d" / ".filesync-tmp-0123456789abcdef"
    fresh = server.root / "d" / ".filesync-tmp-fedcba9876543210"
    stale.parent.mkdir()
    stale.write_bytes(b"half an upload")
    fresh.write_bytes(b"an upload in progress")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    loc = server.location()
    try:
        assert loc.scan() == {}
        assert not stale.exists(), "a temp file older than an hour is removed"
        assert fresh.exists(), "a recent temp file may be someone's upload in progress"
    finally:
        loc.close()
