"""Kept-alive HTTP/1.1 connections to one S3 endpoint, for the direct PUTs.

A small PUT's client CPU went mostly to the HTTP layer, not to the request: urllib3 (botocore's
HTTP layer) spent a quarter of it in its own layers, and ``http.client`` under it still cost
about 0.1 ms a PUT, half of it parsing each answer's headers with the ``email`` package and the
rest checking and sending the request header by header. These requests need little of that:
the request (headers and body) goes out in one ``sendall``, one packet for a small file, and
the answer is read from a buffered reader: a status line, ``name: value`` lines, a body of
``Content-Length`` bytes (or chunked, or up to the close).

Idle connections wait on a stack; one the server closed while it was idle is dropped, or sent
on anew once when that is only found out by sending. Each failure raises what botocore's own
HTTP layer raises for it, so retries and messages stay the client's.
"""

from __future__ import annotations

import collections
import contextlib
import select
import socket
import ssl
import weakref
from typing import BinaryIO, NamedTuple
from urllib.parse import urlsplit

import botocore.exceptions as bex

#: Longest status or header line accepted, and most header lines (as ``http.client``).
MAX_LINE = 65536
MAX_HEADERS = 100
#: Most of an error answer's body read (an S3 error is a short XML message).
MAX_ERROR_BODY = 1024 * 1024


class Closed(ConnectionError):
    """The server closed the connection without answering."""


class BadAnswer(OSError):
    """The server's answer is not HTTP/1.x as this reader understands it, or was cut short."""


#: What a connection the server closed while it sat idle fails with when used.
STALE = (Closed, ConnectionResetError, BrokenPipeError)


class Reply(NamedTuple):
    """One whole answer: status, headers (names lower-cased; the last of a repeated one), body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def status_code(self) -> int:
        """The status, by the name botocore's retry checks read it."""
        return self.status


class Connection:
    """One open connection: its socket and a buffered reader of its answers."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: BinaryIO = sock.makefile("rb")

    def close(self) -> None:
        """Close the reader and the socket."""
        self.reader.close()
        self.sock.close()


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
        default = 443 if self._https else 80
        self._port = parts.port or default
        #: The ``Host`` header: as ``http.client`` writes it, and as SigV4 signs it.
        self.host_header = f"[{self._host}]" if ":" in self._host else self._host
        if self._port != default:
            self.host_header += f":{self._port}"
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._size = size
        self._tls = ssl.create_default_context(cafile=cafile) if self._https else None
        self._idle: collections.deque[Connection] = collections.deque()
        # Closed with the pool at the latest (a socket left to the collector warns).
        weakref.finalize(self, _close_all, self._idle)

    def request(
        self, url: str, path: str, method: str, body: bytes, headers: dict[str, str]
    ) -> Reply:
        """Send one request for ``path`` (``url`` names it in errors) and read its answer.

        Raises botocore's ``EndpointConnectionError``, ``ConnectTimeoutError``,
        ``ReadTimeoutError``, ``ConnectionClosedError`` or ``SSLError``, as its HTTP layer does.
        A header value with a line break raises ValueError (as ``http.client`` does).
        """
        message = _message(method, path, self.host_header, headers, body)
        conn, reused = self._take(url)
        while True:
            answered = False
            try:
                conn.sock.sendall(message)
                first = conn.reader.readline(MAX_LINE + 1)
                if not first:
                    raise Closed("the server closed the connection without answering")
                answered = True
                reply, keep = _read_reply(conn.reader, method, first)
            except STALE as exc:
                conn.close()
                if reused and not answered:
                    # Closed by the server while idle: once more on a new connection. Not
                    # once an answer has begun: the server has the request then.
                    conn, reused = self._connect(url), False
                    continue
                raise bex.ConnectionClosedError(endpoint_url=url, error=exc) from None
            except TimeoutError as exc:
                conn.close()
                raise bex.ReadTimeoutError(endpoint_url=url, error=exc) from None
            except ssl.SSLError as exc:
                conn.close()
                raise bex.SSLError(endpoint_url=url, error=exc) from None
            except (OSError, ValueError) as exc:
                conn.close()
                raise bex.ConnectionClosedError(endpoint_url=url, error=exc) from None
            except BaseException:
                conn.close()
                raise
            if not keep or len(self._idle) >= self._size:
                conn.close()
            else:
                self._idle.append(conn)
            return reply

    def _take(self, url: str) -> tuple[Connection, bool]:
        """An idle connection still open (and True), else a new one (and False)."""
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return self._connect(url), False
            if not _readable(conn.sock):
                return conn, True
            conn.close()  # readable while idle: the server closed it (or sent unasked)

    def _connect(self, url: str) -> Connection:
        address = (self._host, self._port)
        try:
            sock = socket.create_connection(address, timeout=self._connect_timeout)
        except TimeoutError as exc:
            raise bex.ConnectTimeoutError(endpoint_url=url, error=exc) from None
        except OSError as exc:
            raise bex.EndpointConnectionError(endpoint_url=url, error=exc) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
        except ssl.SSLError as exc:
            sock.close()
            raise bex.SSLError(endpoint_url=url, error=exc) from None
        except TimeoutError as exc:
            sock.close()
            raise bex.ConnectTimeoutError(endpoint_url=url, error=exc) from None
        except OSError as exc:
            sock.close()
            raise bex.EndpointConnectionError(endpoint_url=url, error=exc) from None
        sock.settimeout(self._read_timeout)
        return Connection(sock)

    def close(self) -> None:
        """Close the idle connections (new ones are made as needed)."""
        _close_all(self._idle)


def _message(method: str, path: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    """The request as sent: request line, ``Host``, ``headers``, ``Content-Length``, body."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(lines)
    if head.count("\n") != len(lines) - 1 or head.count("\r") != len(lines) - 1:
        raise ValueError("a line break in a request header")
    return (head + "\r\n\r\n").encode("latin-1") + body


def _read_reply(reader: BinaryIO, method: str, line: bytes) -> tuple[Reply, bool]:
    """The whole answer on ``reader`` whose status ``line`` was read, and whether the
    connection stays open after it."""
    while True:
        if not line:
            raise BadAnswer("the server closed the connection after an interim answer")
        version, _, rest = line.decode("latin-1").partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise BadAnswer(f"not an HTTP status line: {line[:80]!r}")
        status = int(code)
        headers = _read_headers(reader)
        if status >= 200 or status == 101:
            break  # 100 Continue and other interim answers are followed by the real one
        line = reader.readline(MAX_LINE + 1)
    closes = headers.get("connection", "").lower()
    keep = "close" not in closes and (version != "HTTP/1.0" or "keep-alive" in closes)
    if method == "HEAD" or status in (204, 304) or status < 200:
        return Reply(status, headers, b""), keep
    # An error's body is read up to MAX_ERROR_BODY (a message, not data); the connection is
    # closed rather than read to the end of a longer one.
    limit = None if status < 300 else MAX_ERROR_BODY
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, whole = _read_chunked(reader, limit)
        return Reply(status, headers, body), keep and whole
    length = headers.get("content-length")
    if length is None:  # until the server closes
        return Reply(status, headers, reader.read() if limit is None else reader.read(limit)), False
    if not length.strip().isdigit():
        raise BadAnswer(f"Content-Length {length!r}")
    if limit is not None and int(length) > limit:
        return Reply(status, headers, reader.read(limit)), False
    body = reader.read(int(length))
    if len(body) != int(length):
        raise BadAnswer(f"the answer ended after {len(body)} of {length} bytes")
    return Reply(status, headers, body), keep


def _read_headers(reader: BinaryIO) -> dict[str, str]:
    headers: dict[str, str] = {}
    name = ""
    for _ in range(MAX_HEADERS + 1):
        line = reader.readline(MAX_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise BadAnswer("the answer's headers ended with the connection")
        if len(line) > MAX_LINE:
            raise BadAnswer("a header line too long")
        if line[:1] in (b" ", b"\t") and name:  # an obsolete folded line continues the last
            headers[name] = f"{headers[name]} {line.decode('latin-1').strip()}".strip()
            continue
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise BadAnswer(f"not a header line: {line[:80]!r}")
        name = name.strip().lower()
        headers[name] = value.strip()
    raise BadAnswer(f"more than {MAX_HEADERS} header lines")


def _read_chunked(reader: BinaryIO, limit: int | None) -> tuple[bytes, bool]:
    """The chunked body (and True), or its first ``limit`` bytes (and False: unread rest)."""
    parts: list[bytes] = []
    got = 0
    while True:
        line = reader.readline(MAX_LINE + 1)
        if not line:
            raise BadAnswer("the answer ended inside a chunk")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadAnswer(f"a chunk size {size_text[:20]!r}") from None
        if size == 0:
            _read_headers(reader)  # trailers, then the blank line
            return b"".join(parts), True
        if limit is not None and got + size > limit:
            parts.append(reader.read(limit - got))
            return b"".join(parts), False
        chunk = reader.read(size)
        if len(chunk) != size or reader.readline(MAX_LINE + 1) not in (b"\r\n", b"\n"):
            raise BadAnswer("the answer ended inside a chunk")
        parts.append(chunk)
        got += size


def _close_all(idle: collections.deque[Connection]) -> None:
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
