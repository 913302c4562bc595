"""The held session every server kind shares (``app/locations/remote/session.py``).

Checked through both of its protocols against real servers: pyftpdlib for FTP, OpenSSH's sshd
for SFTP. A connection is broken by closing it under the client's feet, as a server or a NAT
box dropping an idle connection does.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.errors import FileVanished, LocationUnavailable
from app.locations.ftp.client import FtpClient
from app.locations.registry import parse_spec
from app.locations.remote.session import HeldSession
from app.locations.sftp.connection import SftpConnection
from app.locations.sftp.protocol import list_dir
from tests.ftp_server import ThreadedFtpServer
from tests.sshd_server import SftpServer


@dataclass
class Protocol:
    """A session on a real server, and three requests over it, in its protocol's words."""

    session: HeldSession[Any]
    #: A harmless request that works on a live connection.
    ask: Callable[[Any], object]
    #: Break the connection from the client's side (the next request fails).
    cut: Callable[[Any], None]
    #: A request the server refuses (no such folder): not a broken connection.
    refuse: Callable[[Any], object]


def _ftp(server: ThreadedFtpServer) -> Protocol:
    def cut(ftp: Any) -> None:
        ftp.sock.shutdown(socket.SHUT_RDWR)

    return Protocol(
        FtpClient(parse_spec(server.url()), timeout=10),
        ask=lambda ftp: ftp.pwd(),
        cut=cut,
        refuse=lambda ftp: ftp.cwd("/no such folder"),
    )


def _sftp(server: SftpServer) -> Protocol:
    def cut(sftp: Any) -> None:
        sftp.transport.close()

    return Protocol(
        SftpConnection(parse_spec(server.url()), timeout=10),
        ask=lambda sftp: sftp.normalize("."),
        cut=cut,
        refuse=lambda sftp: list_dir(sftp, "/no such folder"),
    )


@pytest.fixture(params=["ftp", "sftp"])
def protocol(request: pytest.FixtureRequest) -> Iterator[Protocol]:
    """A held session of each protocol, closed at the end."""
    if request.param == "ftp":
        made = _ftp(request.getfixturevalue("ftp_server"))
    else:
        made = _sftp(request.getfixturevalue("sshd_server"))
    yield made
    made.session.close()


def test_the_holder_re_entering_its_session_is_refused_not_deadlocked(protocol: Protocol) -> None:
    session = protocol.session
    with session.session() as conn:
        with pytest.raises(RuntimeError, match="re-entered by its holder"), session.session():
            pass
        protocol.ask(conn)
    assert session.run("asking", protocol.ask)


def test_another_thread_waits_for_the_holder_and_then_gets_the_same_connection(
    protocol: Protocol,
) -> None:
    session = protocol.session
    got: list[object] = []
    with session.session() as held:
        other = threading.Thread(target=lambda: got.append(session.run("asking", lambda c: c)))
        other.start()
        other.join(timeout=0.5)
        assert other.is_alive(), "the other thread did not wait for the holder"
    other.join(timeout=30)
    assert got == [held]


class Recorded:
    """An action that notes every connection it ran on, doing ``then`` the ``n``-th time."""

    def __init__(self, then: Callable[[Any, int], object]) -> None:
        self.used: list[object] = []
        self._then = then

    def __call__(self, conn: object) -> object:
        self.used.append(conn)
        return self._then(conn, len(self.used))


def test_a_broken_connection_is_retried_once_on_a_fresh_one(protocol: Protocol) -> None:
    def cut_first(conn: object, n: int) -> object:
        if n == 1:
            protocol.cut(conn)
        return protocol.ask(conn)

    action = Recorded(cut_first)
    assert protocol.session.run("asking", action)
    assert len(action.used) == 2 and action.used[0] is not action.used[1]
    assert protocol.session.run("asking", lambda c: c) is action.used[1]


def test_a_second_break_is_location_unavailable_and_the_next_call_reconnects(
    protocol: Protocol,
) -> None:
    def cut_always(conn: object, n: int) -> object:
        protocol.cut(conn)
        return protocol.ask(conn)

    action = Recorded(cut_always)
    session = protocol.session
    with pytest.raises(LocationUnavailable, match=f"asking failed on {session.address}"):
        session.run("asking", action)
    assert len(action.used) == 2
    assert session.run("asking", protocol.ask)


def test_a_refused_request_propagates_unchanged_and_keeps_the_connection(
    protocol: Protocol,
) -> None:
    action = Recorded(lambda conn, n: protocol.refuse(conn))
    with pytest.raises(Exception) as caught:
        protocol.session.run("asking", action)
    assert not isinstance(caught.value, LocationUnavailable)
    assert not protocol.session.is_broken(caught.value)
    assert len(action.used) == 1
    assert protocol.session.run("asking", lambda c: c) is action.used[0]


def test_a_missing_file_to_download_is_file_vanished_without_a_retry(protocol: Protocol) -> None:
    action = Recorded(lambda conn, n: protocol.refuse(conn))
    with protocol.session.session() as conn, pytest.raises(FileVanished):
        protocol.session.start_download("no such folder", conn, action)
    assert len(action.used) == 1
