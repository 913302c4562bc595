"""Kept-alive ``http.client`` connections to one S3 endpoint, for the direct PUTs.

urllib3, botocore's HTTP layer, spends about a quarter of a small PUT's client CPU in its own
layers (pool and URL bookkeeping, header containers, response wrappers) around the
``http.client`` that does the work: 0.43 ms a PUT against 0.31 ms here, 2,000 PUTs 8 at a time.
This pool keeps idle connections on a stack, drops one the server closed while it was idle
(and sends once more on a new one when that is only found out by sending), and raises what
botocore's own HTTP layer raises for each failure, so retries and messages stay the client's.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import select
import socket
import ssl
import weakref
from typing import NamedTuple
from urllib.parse import urlsplit

import botocore.exceptions as bex
from botocore.awsrequest import HTTPHeaders

#: What a connection the server closed while it sat idle fails with when used.
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Reply(NamedTuple):
    """One whole answer: status, headers, body."""

    status: int
    headers: HTTPHeaders
    body: bytes


class Connections:
    """Connections to the host of ``base_url`` (http or https), at most ``size`` kept idle."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        size: int,
        cafile: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or ""
        self._https = parts.scheme == "https"
        self._port = parts.port or (443 if self._https else 80)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._size = size
        self._tls = ssl.create_default_context(cafile=cafile) if self._https else None
        self._idle: collections.deque[http.client.HTTPConnection] = collections.deque()
        # Closed with the pool at the latest (a socket left to the collector warns).
        weakref.finalize(self, _close_all, self._idle)

    def request(
        self, url: str, path: str, method: str, body: bytes, headers: dict[str, str]
    ) -> Reply:
        """Send one request for ``path`` (``url`` names it in errors) and read its answer.

        Raises botocore's ``EndpointConnectionError``, ``ConnectTimeoutError``,
        ``ReadTimeoutError``, ``ConnectionClosedError`` or ``SSLError``, as its HTTP layer does.
        """
        conn, reused = self._take()
        while True:
            try:
                if conn.sock is None:
                    self._connect(conn, url)
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except STALE as exc:
                conn.close()
                if reused:  # closed by the server while idle: once more on a new connection
                    conn, reused = self._new(), False
                    continue
                raise bex.ConnectionClosedError(endpoint_url=url, error=exc) from None
            except TimeoutError as exc:
                conn.close()
                raise bex.ReadTimeoutError(endpoint_url=url, error=exc) from None
            except ssl.SSLError as exc:
                conn.close()
                raise bex.SSLError(endpoint_url=url, error=exc) from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise bex.ConnectionClosedError(endpoint_url=url, error=exc) from None
            except BaseException:
                conn.close()
                raise
            if response.will_close or len(self._idle) >= self._size:
                conn.close()
            else:
                self._idle.append(conn)
            return Reply(response.status, HTTPHeaders.from_pairs(response.getheaders()), data)

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection still open (and True), else a new one (and False)."""
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return self._new(), False
            if conn.sock is not None and not _readable(conn.sock):
                return conn, True
            conn.close()  # readable while idle: the server closed it (or sent unasked)

    def _new(self) -> http.client.HTTPConnection:
        if self._tls is not None:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._connect_timeout, context=self._tls
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self._connect_timeout)

    def _connect(self, conn: http.client.HTTPConnection, url: str) -> None:
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise bex.ConnectTimeoutError(endpoint_url=url, error=exc) from None
        except ssl.SSLError as exc:
            conn.close()
            raise bex.SSLError(endpoint_url=url, error=exc) from None
        except OSError as exc:
            conn.close()
            raise bex.EndpointConnectionError(endpoint_url=url, error=exc) from None
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock.settimeout(self._read_timeout)

    def close(self) -> None:
        """Close the idle connections (new ones are made as needed)."""
        _close_all(self._idle)


def _close_all(idle: collections.deque[http.client.HTTPConnection]) -> None:
    while idle:
        with contextlib.suppress(IndexError):
            idle.pop().close()


def _readable(sock: socket.socket) -> bool:
    """True if ``sock`` has something to read (or its end was closed), without waiting."""
    if hasattr(select, "poll"):  # select() fails beyond 1,024 descriptors; Windows has no poll
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])
