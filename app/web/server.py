"""uvicorn serving the dashboard in its own thread, beside the engine.

uvicorn installs no signal handlers outside the main thread, so the front end keeps its own
(SIGTERM stops the engine, then :meth:`DashboardServer.stop` ends the server). The socket is
bound here first, so port 0 gives a free port known before the first request.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import uvicorn

from app.logsetup import register_secret
from app.web.access import Address, forget_address, load_or_create_token, write_address
from app.web.api import Api, create_app
from app.web.bind import DEFAULT_HOST, Bind, Tls, WebAddressError, check_reachable
from app.web.control import Controls
from app.web.feed import ActivityFeed
from app.web.guard import WILDCARDS, AllowedHosts, Guard
from app.web.versions_routes import VersionRoutes

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0


class DashboardServer:
    """The dashboard of one running instance: :meth:`start`, then :meth:`stop`."""

    def __init__(
        self,
        controls: Controls,
        state_dir: Path,
        bind: Bind,
        tls: Tls | None = None,
    ) -> None:
        if tls is None:
            check_reachable(bind)
        self.controls = controls
        self.state_dir = state_dir
        self.bind = bind
        self.tls = tls
        self.feed = ActivityFeed()
        self.port = 0
        self.address: Address | None = None
        self._stopping = threading.Event()
        self._token = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL a browser on this computer opens (``http://127.0.0.1:PORT/``)."""
        host = DEFAULT_HOST if self.bind.host in WILDCARDS else self.bind.host
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    @property
    def login_url(self) -> str:
        """The URL that logs a browser in (it holds the token: never log it)."""
        return f"{self.url}?token={self._token}"

    def _listen(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.bind.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.bind.host, self.bind.port))
        except OSError as exc:
            sock.close()
            raise WebAddressError(
                f"cannot serve the dashboard on {self.bind.host}:{self.bind.port}: "
                f"{exc.strerror or exc} (another program there? --web 127.0.0.1:0 picks a "
                "free port)"
            ) from None
        sock.set_inheritable(True)
        return sock

    def start(self) -> str:
        """Listen, serve in the ``filesync-web`` thread and record the address; return the URL."""
        token = load_or_create_token(self.state_dir)
        register_secret(token)  # masked in every log line, should anything ever print it
        self._token = token
        sock = self._listen()
        self.port = sock.getsockname()[1]
        self.controls.add_listener(self.feed.add)
        api = Api(self.controls, self.feed, self._stopping)
        hosts = AllowedHosts(self.bind.host)

        def guarded(app: object) -> Guard:
            return Guard(app, token=token, hosts=hosts, port=self.port, tls=self.tls is not None)  # type: ignore[arg-type]

        config = uvicorn.Config(
            create_app(api, VersionRoutes(self.controls), guarded),
            log_config=None,
            log_level="warning",
            access_log=False,  # an access log would hold the login URL with its token
            lifespan="off",
            timeout_graceful_shutdown=3,
            ssl_certfile=str(self.tls.cert) if self.tls else None,
            ssl_keyfile=str(self.tls.key) if self.tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._serve, args=(self._server, sock), name="filesync-web", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise WebAddressError("the dashboard did not start (see the log)")
            time.sleep(0.01)
        self.address = Address(self.url, str(self.tls.cert.resolve()) if self.tls else "")
        write_address(self.state_dir, self.address)
        return self.url

    @staticmethod
    def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except Exception:
            log.exception("the dashboard stopped with an error")
        finally:
            sock.close()

    def stop(self, timeout: float = 10.0) -> None:
        """End open streams, stop the server, join its thread and forget the address."""
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the dashboard did not stop within %.0f s", timeout)
            self._thread = None
        if self.address is not None:
            forget_address(self.state_dir, self.address)
            self.address = None
