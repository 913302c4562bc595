"""pytest plugin: real pyftpdlib servers on 127.0.0.1, each served by its own thread.

Three flavours, because FileSync must cope with all of them:

* ``full``: MLSD/MLST and MFMT (perm ``T``), like proftpd or pure-ftpd;
* ``list``: no MLSD/MLST and no MFMT, like vsftpd: LIST parsing, MDTM, no settable time;
* ``tls``: explicit FTPS with a certificate from a throw-away CA made with trustme; the client
  gets ``cafile=`` so certificate verification stays on.

Servers bind to 127.0.0.1 only. Each fixture stops and joins its thread at teardown (the
autouse leak check in conftest fails a test that leaves one behind). ``stop()``/``start()``
restart a server on the same port, for reconnect tests.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trustme

with warnings.catch_warnings():
    # pyftpdlib is built on asynchat/asyncore, deprecated since 3.11; the suite turns
    # warnings into errors, so allow exactly that one at import.
    warnings.filterwarnings("ignore", "The (asyncore|asynchat) module", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
    from pyftpdlib.ioloop import IOLoop
    from pyftpdlib.servers import FTPServer

from app.locations import LocationOptions, open_location
from app.locations.base import Location

HOST = "127.0.0.1"
USER = "alice"
#: Every character the spec forms find awkward, so login with it is tested everywhere.
PASSWORD = "p@ss:w/rd"
#: Full rights, including T (MFMT).
PERM = "elradfmwMT"
#: Commands the ``list`` flavour lacks, as vsftpd does.
MODERN_COMMANDS = ("MLSD", "MLST", "MFMT")

logging.getLogger("pyftpdlib").addHandler(logging.NullHandler())
logging.getLogger("pyftpdlib").setLevel(logging.WARNING)


class ThreadedFtpServer:
    """A pyftpdlib server on 127.0.0.1 running in a thread until :meth:`stop`."""

    def __init__(self, root: Path, flavour: str = "full", certfile: Path | None = None) -> None:
        self.root = root
        self.flavour = flavour
        self.certfile = certfile
        self.cafile: Path | None = None
        self.port = 0
        self._server: FTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        root.mkdir(parents=True, exist_ok=True)

    def _handler(self) -> type[FTPHandler]:
        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(self.root), perm=PERM)
        authorizer.add_anonymous(str(self.root), perm="elr")  # read-only, as usual
        attrs: dict[str, Any] = {
            "authorizer": authorizer,
            "auth_failed_timeout": 0.05,
            "banner": f"FileSync test server ({self.flavour})",
        }
        base: type[FTPHandler] = FTPHandler
        if self.flavour == "list":
            attrs["proto_cmds"] = {
                name: info
                for name, info in FTPHandler.proto_cmds.items()
                if name not in MODERN_COMMANDS
            }
        elif self.flavour == "tls":
            base = TLS_FTPHandler
            attrs.update(
                certfile=str(self.certfile),
                keyfile=None,
                ssl_context=None,  # each server class builds its own context
                tls_control_required=True,
                tls_data_required=True,
            )
        return type(f"{self.flavour.title()}Handler", (base,), attrs)

    def start(self) -> None:
        """Listen (on the previous port after a :meth:`stop`) and serve in a new thread."""
        self._stop.clear()
        self._server = FTPServer((HOST, self.port), self._handler(), ioloop=IOLoop())
        self.port = self._server.address[1]
        self._thread = threading.Thread(
            target=self._serve, name=f"ftp server {self.flavour}:{self.port}", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        server = self._server
        assert server is not None
        try:
            while not self._stop.is_set():
                server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
        finally:
            server.close_all()

    def stop(self) -> None:
        """Close every connection and the listening socket, and join the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            assert not self._thread.is_alive(), "FTP server thread did not stop"
            self._thread = None
        self._server = None

    def url(
        self, user: str = USER, password: str = PASSWORD, path: str = "/", **options: str
    ) -> str:
        """An ``ftp://`` (``ftps://`` for TLS) URL with the password percent-encoded."""
        scheme = "ftps" if self.flavour == "tls" else "ftp"
        if self.flavour == "tls" and "cafile" not in options and "verify" not in options:
            options["cafile"] = str(self.cafile)
        cred = ""
        if user:
            cred = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
            cred += "@"
        query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in options.items())
        return f"{scheme}://{cred}{HOST}:{self.port}{path}" + (f"?{query}" if query else "")

    def location(self, timeout: float = 5.0, **url_args: Any) -> Location:
        """An opened location on this server (the caller closes it)."""
        loc = open_location(self.url(**url_args), LocationOptions(connect_timeout=timeout))
        loc.open()
        return loc


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A throw-away certificate authority for the FTPS server."""
    return trustme.CA()


def _serve(root: Path, flavour: str, tmp_path: Path, ca: trustme.CA | None) -> ThreadedFtpServer:
    certfile = None
    cafile = None
    if ca is not None:
        cert = ca.issue_cert(HOST, "localhost")
        certfile = tmp_path / "server.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
        cafile = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(cafile))
    server = ThreadedFtpServer(root, flavour, certfile)
    server.cafile = cafile
    server.start()
    return server


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[ThreadedFtpServer]:
    """A server with MLSD and MFMT."""
    server = _serve(tmp_path / "ftp-root", "full", tmp_path, None)
    yield server
    server.stop()


@pytest.fixture
def ftp_list_server(tmp_path: Path) -> Iterator[ThreadedFtpServer]:
    """A server with neither MLSD/MLST nor MFMT (LIST + MDTM only, like vsftpd)."""
    server = _serve(tmp_path / "ftp-list-root", "list", tmp_path, None)
    yield server
    server.stop()


@pytest.fixture
def ftps_server(tmp_path: Path, tls_ca: trustme.CA) -> Iterator[ThreadedFtpServer]:
    """An explicit-TLS server whose certificate ``tls_ca`` signed."""
    server = _serve(tmp_path / "ftps-root", "tls", tmp_path, tls_ca)
    yield server
    server.stop()


@pytest.fixture
def ftp_location(ftp_server: ThreadedFtpServer) -> Iterator[Location]:
    """An opened FTP location on the root of ``ftp_server``."""
    loc = ftp_server.location()
    yield loc
    loc.close()


@pytest.fixture
def ftp_list_location(ftp_list_server: ThreadedFtpServer) -> Iterator[Location]:
    """An opened FTP location on the LIST-only server."""
    loc = ftp_list_server.location()
    yield loc
    loc.close()


@pytest.fixture
def ftps_location(ftps_server: ThreadedFtpServer) -> Iterator[Location]:
    """An opened FTPS location, certificate verified against the test CA."""
    loc = ftps_server.location()
    yield loc
    loc.close()
