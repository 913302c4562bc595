"""A real engine over real folders, a ZIP and an FTP server, with its dashboard served on a
free loopback port, and a small HTTP client that sets any header (Host, cookies) a test needs.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.engine.engine import Engine, EngineSettings
from app.engine.index import StateIndex
from app.locations import LocationOptions, open_location
from app.locations.registry import parse_spec
from app.web.access import read_token
from app.web.bind import Bind
from app.web.control import EngineControls
from app.web.server import DashboardServer
from tests.ftp_server import ThreadedFtpServer


@dataclass
class Reply:
    """One HTTP answer."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class Client:
    """Speaks to the dashboard like a script (``token``) or a logged-in browser (cookies)."""

    url: str
    token: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        sent = {"Host": f"127.0.0.1:{self.port}"}
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.call("POST", path, body if body is not None else {}, **kw)

    def login(self, token: str) -> Reply:
        """Open ``/?token=…`` as a browser does and keep the cookies it sets."""
        reply = self.get(f"/?token={token}")
        for header in reply.headers.get_all("set-cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                self.cookies[name] = morsel.value
        return reply

    def csrf(self) -> str:
        return next(v for k, v in self.cookies.items() if k.startswith("filesync-csrf-"))


@dataclass
class Dashboard:
    """The running rig: ``a``, ``b`` folders, a ZIP, an FTP root, the engine and the server."""

    tmp: Path
    a: Path
    b: Path
    archive: Path
    ftp: ThreadedFtpServer
    state: Path
    engine: Engine
    server: DashboardServer
    specs: list[str]

    @property
    def token(self) -> str:
        return read_token(self.state)

    def client(self, token: str | None = "") -> Client:
        """A client with the real token (default), another token, or none (``None``)."""
        return Client(self.server.url, self.token if token == "" else token)

    def key(self, index: int) -> str:
        return parse_spec(self.specs[index]).key


@pytest.fixture
def dashboard(tmp_path: Path, ftp_server: ThreadedFtpServer) -> Iterator[Dashboard]:
    """Folders a and b, a ZIP and an FTP location synced by a running engine with its
    dashboard on a free port of 127.0.0.1."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "hello.txt").write_text("hello")
    archive = tmp_path / "archive.zip"
    state = tmp_path / "state"
    specs = [f"folder:{a}", f"folder:{b}", f"zip:{archive}", ftp_server.url()]
    options = LocationOptions(connect_timeout=5.0)
    parsed = [parse_spec(s) for s in specs]
    index = StateIndex(state / "index.sqlite")
    engine = Engine(
        [open_location(s, options) for s in parsed],
        index,
        EngineSettings(debounce=0.03, poll_interval=0.2),
    )
    server = DashboardServer(
        EngineControls(engine, parsed, options, state), state, Bind("127.0.0.1", 0)
    )
    server.start()
    try:
        engine.start()
        try:
            yield Dashboard(tmp_path, a, b, archive, ftp_server, state, engine, server, specs)
        finally:
            engine.stop()
    finally:
        server.stop()
        index.close()
