"""A real HTTP proxy on 127.0.0.1 in front of a test S3 server: it sees every request on the
wire (to count them and tell who sent them, and the body bytes each way) and can answer some
itself (a 503, to prove retries) or run a test's step just before forwarding one (another
program's write at that moment), forwarding everything else unchanged.

Use its ``endpoint`` as a location's ``endpoint=``; the signature still holds, because the
proxy passes the ``Host`` header through as the client sent it.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Headers that describe one hop's connection, not the request.
HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "expect", "content-length", "date", "server"}
)


@dataclass(frozen=True)
class Seen:
    """One request as it arrived: method, path (with query), User-Agent and the object a
    ``CopyObject`` copies (its ``x-amz-copy-source``, "" for other requests)."""

    method: str
    path: str
    agent: str
    copy_source: str = ""


#: Decides from a request whether the proxy answers it itself: (status, code) or None.
Fault = Callable[[Seen], tuple[int, str] | None]


class S3Proxy:
    """Forward HTTP requests to ``upstream`` (``http://host:port``); record each one."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.seen: list[Seen] = []
        self.fault: Fault | None = None
        #: Runs just before a request is forwarded (not for those ``fault`` answers).
        self.before: Callable[[Seen], None] | None = None
        #: Each forwarded request with its body's bytes and its answer's body bytes.
        self.traffic: list[tuple[Seen, int, int]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 2.0  # an idle kept-alive connection ends, and its thread with it

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _relay(self) -> None:
                seen = Seen(self.command, self.path, self.headers.get("User-Agent", ""),
                            self.headers.get("x-amz-copy-source", ""))  # fmt: skip
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.seen.append(seen)
                    fault = proxy.fault(seen) if proxy.fault is not None else None
                if fault is not None:
                    status, code = fault
                    payload = (f"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>{code}"
                               f"</Code><Message>injected</Message></Error>").encode()  # fmt: skip
                    self._answer(status, [("Content-Type", "application/xml")], payload)
                    return
                if proxy.before is not None:
                    proxy.before(seen)
                upstream = http.client.HTTPConnection(host, int(port), timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    reply = upstream.getresponse()
                    data = reply.read()
                    with proxy._lock:
                        proxy.traffic.append((seen, len(body), len(data)))
                    kept = [(k, v) for k, v in reply.getheaders() if k.lower() not in HOP]
                    self._answer(reply.status, kept, data, reply.getheader("Content-Length"))
                finally:
                    upstream.close()

            def _answer(
                self,
                status: int,
                headers: list[tuple[str, str]],
                body: bytes,
                length: str | None = None,
            ) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                head = self.command == "HEAD"
                self.send_header("Content-Length", length if head and length else str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="s3 proxy", daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> S3Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def body_bytes(self) -> int:
        """Body bytes forwarded so far, both ways (requests' and answers')."""
        with self._lock:
            return sum(up + down for _, up, down in self.traffic)

    def count(self, method: str, agent: str = "") -> int:
        """Requests seen with ``method`` whose User-Agent contains ``agent``."""
        with self._lock:
            return sum(1 for s in self.seen if s.method == method and agent in s.agent)
