"""The direct PUTs' own wire layer: SigV4 signing (``s3/sigv4.py``) and the HTTP/1.1
connections (``s3/httppool.py``).

The signer must produce exactly the headers botocore's ``S3SigV4Auth`` produces for the same
request at the same second; the connections must read every answer form a server may send
(chunked, ``100 Continue`` first, ``Connection: close``, cut short) and fail as botocore's HTTP
layer fails. A scripted server on 127.0.0.1 sends raw bytes, so each form is really on the wire.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import botocore.exceptions as bex
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from app.locations.s3.httppool import MAX_ERROR_BODY, Connections
from app.locations.s3.sigv4 import Credentials, Signer

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def botocore_headers(
    url: str, headers: dict[str, str], body: bytes, token: str | None, region: str
) -> dict[str, str]:
    request = AWSRequest("PUT", url, data=body, headers=headers)
    S3SigV4Auth(ReadOnlyCredentials(KEY, SECRET, token), "s3", region).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize(
    ("url", "host", "headers", "token"),
    [
        ("http://127.0.0.1:9000/bucket/d/f%20x.txt", "127.0.0.1:9000",
         {"x-amz-meta-mtime": "1700000000.5"}, None),
        ("https://bkt.s3.eu-west-1.amazonaws.com/a/b~c/%C3%A9.b", "bkt.s3.eu-west-1.amazonaws.com",
         {"x-amz-meta-mtime": "1.25", "If-Match": '"0123abcd"'}, "session/token+="),
        ("http://[::1]:8080/b/k?x-id=PutObject&a=1", "[::1]:8080",
         {"If-None-Match": "*", "x-amz-meta-mtime": " 2  spaced  "}, None),
    ],
)  # fmt: skip
@pytest.mark.parametrize("body", [b"", b"small file content\n" * 50])
def test_a_put_is_signed_exactly_as_botocore_signs_it(
    url: str, host: str, headers: dict[str, str], token: str | None, body: bytes
) -> None:
    region = "eu-west-1"
    expected = botocore_headers(url, headers, body, token, region)
    path, _, query = url.split(host, 1)[1].partition("?")
    signer = Signer(host, region, "s3")
    for _ in range(2):  # the second time with the day's key kept
        signed = signer.sign(Credentials(KEY, SECRET, token), "PUT", path, query=query,
                             headers=headers, body=body, when=expected["X-Amz-Date"])  # fmt: skip
        assert signed == expected


def test_the_kept_signing_key_changes_with_the_day_and_the_secret() -> None:
    signer = Signer("h:1", "us-east-1", "s3")

    def signature(when: str, secret: str) -> str:
        creds = Credentials(KEY, secret, None)
        signed = signer.sign(creds, "PUT", "/b/k", query="", headers={}, body=b"x", when=when)
        return signed["Authorization"].split("Signature=")[1]

    first = signature("20260101T235959Z", SECRET)
    assert signature("20260102T000000Z", SECRET) != signature("20260102T000000Z", SECRET + "x")
    fresh = Signer("h:1", "us-east-1", "s3")  # nothing kept: what the key must be
    creds = Credentials(KEY, SECRET, None)
    again = fresh.sign(creds, "PUT", "/b/k", query="", headers={}, body=b"x",
                       when="20260101T235959Z")  # fmt: skip
    assert first == again["Authorization"].split("Signature=")[1]
    assert signature("20260101T235959Z", SECRET) == first


class Cut(bytes):
    """An answer the scripted server sends and then closes the connection after."""


class ScriptedServer:
    """A TCP server on 127.0.0.1 answering each request on a connection with the next of
    ``answers`` (raw bytes; None closes the connection instead, a :class:`Cut` closes it after
    sending); it records what it got."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader, contextlib.suppress(ConnectionResetError):
            while self.answers:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + reader.read(length))
                answer = self.answers.pop(0)
                if answer is None:
                    return
                try:
                    conn.sendall(answer)
                except OSError:  # the client stopped reading (a long error body) and closed
                    return
                if isinstance(answer, Cut):
                    return

    def close(self) -> None:
        self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self._sock.close()
        self._accepting.join(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)


@pytest.fixture
def scripted() -> Iterator[Callable[[list[bytes | None]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(answers: list[bytes | None]) -> ScriptedServer:
        servers.append(ScriptedServer(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def pool(server: ScriptedServer) -> Connections:
    return Connections(f"http://127.0.0.1:{server.port}/b/", connect_timeout=5, read_timeout=5,
                       size=4)  # fmt: skip


def put(
    conns: Connections, body: bytes = b"data", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    reply = conns.request("http://h/b/k", "/b/k", "PUT", body, headers)
    return reply.status, reply.headers, reply.body


OK = b'HTTP/1.1 200 OK\r\nETag: "e1"\r\nContent-Length: 0\r\n\r\n'


def test_answers_in_every_form_are_read_and_the_connection_kept(
    scripted: Callable[..., ScriptedServer],
) -> None:
    server = scripted([
        OK,
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nETag: \"e2\"\r\nContent-Length: 2\r\n\r\nhi",
        b"HTTP/1.1 503 Slow Down\r\nTransfer-Encoding: chunked\r\nX-Amz-Request-Id: r1\r\n\r\n"
        b"5\r\n<Err>\r\n6;ext=1\r\n</Err>\r\n0\r\nTrailer: t\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nEtag: \"e4\"\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    ])  # fmt: skip
    conns = pool(server)
    try:
        assert put(conns, b"one", **{"x-amz-meta-mtime": "1.5"}) == (
            200,
            {"etag": '"e1"', "content-length": "0"},
            b"",
        )
        assert put(conns)[1:] == ({"etag": '"e2"', "content-length": "2"}, b"hi")
        status, headers, body = put(conns)
        assert (status, body, headers["x-amz-request-id"]) == (503, b"<Err></Err>", "r1")
        assert put(conns)[1]["etag"] == '"e4"'
        assert server.connections == 1  # kept alive until the server said close
        first = server.requests[0]
        assert first.startswith(b"PUT /b/k HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % server.port)
        assert b"x-amz-meta-mtime: 1.5\r\n" in first and first.endswith(
            b"Content-Length: 3\r\n\r\none"
        )
    finally:
        conns.close()


def test_a_connection_the_server_closed_while_idle_is_sent_on_anew(
    scripted: Callable[..., ScriptedServer],
) -> None:
    server = scripted([OK, None, OK])  # the second request finds the connection closed
    conns = pool(server)
    try:
        assert put(conns)[0] == 200
        assert put(conns)[0] == 200
        assert server.connections == 2 and len(server.requests) == 3
    finally:
        conns.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        None,
    ],
    ids=["cut short", "not http", "closed at once"],
)
def test_a_broken_answer_on_a_new_connection_fails_as_botocore_does(
    scripted: Callable[..., ScriptedServer], answer: bytes | None
) -> None:
    server = scripted([answer])
    conns = pool(server)
    try:
        with pytest.raises(bex.ConnectionClosedError):
            put(conns)
    finally:
        conns.close()


def test_nothing_listens_and_a_header_with_a_line_break_fail_clearly() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    conns = Connections(f"http://127.0.0.1:{port}/", connect_timeout=5, read_timeout=5, size=1)
    with pytest.raises(bex.EndpointConnectionError):
        put(conns)
    with pytest.raises(ValueError, match="line break"):
        put(conns, **{"x-amz-meta-mtime": "1\r\nX-Evil: 1"})


def test_an_answer_begun_and_broken_off_is_not_sent_again(
    scripted: Callable[..., ScriptedServer],
) -> None:
    """Only a connection closed before any answer is taken for one the server closed while it
    was idle: once an answer has begun, the server has the request (a second PUT of a guarded
    write would find FileSync's own object)."""
    server = scripted([OK, Cut(b"HTTP/1.1 100 Continue\r\n\r\n"), OK])
    conns = pool(server)
    try:
        assert put(conns)[0] == 200
        with pytest.raises(bex.ConnectionClosedError):
            put(conns, **{"If-None-Match": "*"})
        assert len(server.requests) == 2
    finally:
        conns.close()


def test_a_folded_header_line_continues_the_one_before(
    scripted: Callable[..., ScriptedServer],
) -> None:
    server = scripted(
        [b'HTTP/1.1 200 OK\r\nETag: "e"\r\nX-Long: a\r\n  folded\r\nContent-Length: 0\r\n\r\n']
    )
    conns = pool(server)
    try:
        status, headers, _ = put(conns)
        assert (status, headers["x-long"], headers["etag"]) == (200, "a folded", '"e"')
    finally:
        conns.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_a_long_error_body_is_read_only_in_part_and_its_connection_closed(
    scripted: Callable[..., ScriptedServer], chunked: bool
) -> None:
    size = 3 * MAX_ERROR_BODY
    if chunked:
        chunk = b"x" * 65536
        body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * (size // len(chunk)) + b"0\r\n\r\n"
        head = b"HTTP/1.1 500 Internal\r\nTransfer-Encoding: chunked\r\n\r\n"
    else:
        body = b"x" * size
        head = b"HTTP/1.1 500 Internal\r\nContent-Length: %d\r\n\r\n" % size
    server = scripted([head + body, OK])
    conns = pool(server)
    try:
        status, _, got = put(conns)
        assert (status, len(got)) == (500, MAX_ERROR_BODY)
        assert put(conns)[0] == 200
        assert server.connections == 2  # the rest of the long body was never read
    finally:
        conns.close()
