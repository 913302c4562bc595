"""Requests queued and sent together, replies cut out of bulk reads (``sftp/wire.py``).

Against OpenSSH and rclone: the server sees requests in the order they were made, whichever
pipeline made them; every reply reaches its own pipeline, however the replies were cut into
channel reads (thousands of small ones, and data bigger than one read).
"""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator

import paramiko
import pytest
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_FSETSTAT,
    CMD_OPEN,
    CMD_WRITE,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_WRITE,
    int64,
)

from app.locations.sftp import protocol, transfer, wire
from app.locations.sftp.location import SftpLocation
from app.locations.sftp.protocol import Pipeline
from tests.sshd_server import SftpServer


@pytest.fixture(params=["sshd", "rclone"])
def client(request: pytest.FixtureRequest) -> Iterator[tuple[paramiko.SFTPClient, str]]:
    server: SftpServer = request.getfixturevalue(f"{request.param}_server")
    loc = server.location()
    assert isinstance(loc, SftpLocation)
    root = "/" if server.flavour == "rclone" else str(server.root)
    with loc._conn.session() as sftp:
        yield sftp, root.rstrip("/")
    loc.close()


def test_requests_of_two_pipelines_reach_the_server_in_the_order_made(
    client: tuple[paramiko.SFTPClient, str],
) -> None:
    sftp, root = client
    first = Pipeline(sftp)
    flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE
    opened = first.send(CMD_OPEN, protocol.encode(f"{root}/a"), flags, paramiko.SFTPAttributes())
    handle = first.handle(opened)
    times = paramiko.SFTPAttributes()
    times.st_atime = times.st_mtime = 1_600_000_000
    queued = [
        first.send(CMD_WRITE, handle, int64(0), b"written first"),
        first.send(CMD_FSETSTAT, handle, times),
        first.send(CMD_CLOSE, handle),
    ]
    # queued, not waited for: the rename is made after them, so it must see the whole file
    protocol.rename(sftp, f"{root}/a", f"{root}/b", posix=False)
    for num in queued:
        first.status(num)
    assert transfer.read_from(sftp, f"{root}/b", 0) == b"written first"
    attrs = protocol.lstat_many(sftp, [f"{root}/b"])[0]
    assert attrs is not None and attrs.st_mtime == 1_600_000_000


def test_every_reply_reaches_its_own_pipeline_however_the_reads_cut_them(
    client: tuple[paramiko.SFTPClient, str],
) -> None:
    sftp, root = client
    big = os.urandom(3 * wire.RECV_BYTES + 12345)
    buffer = bytearray(protocol.REQUEST_SIZE * 4)
    transfer.upload(sftp, f"{root}/big", io.BytesIO(big), 1_600_000_000, buffer)
    for n in range(0, 300, 3):
        transfer.upload(sftp, f"{root}/f{n}", io.BytesIO(b"x" * n), 1_600_000_000 + n, buffer)
    paths = [f"{root}/f{n}" for n in range(300)]
    found = protocol.lstat_many(sftp, paths)  # 300 replies, a third of them files
    assert [a is not None for a in found] == [n % 3 == 0 for n in range(300)]
    assert [a.st_size for a in found if a is not None] == list(range(0, 300, 3))
    assert transfer.read_from(sftp, f"{root}/big", 0) == big
    assert transfer.read_from(sftp, f"{root}/big", len(big) - 10) == big[-10:]


def test_the_connection_does_not_hold_requests_back_for_acknowledgements(
    sshd_server: SftpServer,
) -> None:
    """Nagle's algorithm held a request until the previous one was acknowledged (up to 40 ms
    each: most of a big download's time); requests already go out together (wire.py)."""
    loc = sshd_server.location()
    assert isinstance(loc, SftpLocation)
    try:
        with loc._conn.session() as sftp:
            sock = sftp.transport.sock
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        loc.close()
