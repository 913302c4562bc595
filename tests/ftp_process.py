"""A pyftpdlib server in a child process, so a test can freeze it with SIGSTOP.

A server thread inside the test process cannot be stopped on its own; a child process can,
which is what a hung server or a network dropping packets looks like to FileSync: the TCP
connection stays up and nothing answers. Run as ``python -m tests.ftp_process ROOT``; it
prints its port on the first line of its output (sent to a file, never a pipe).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

from tests.ftp_server import HOST, PASSWORD, PERM, USER, ThreadedFtpServer
from tests.helpers import poll_until

ROOT_DIR = Path(__file__).resolve().parent.parent


class FtpProcess:
    """A server on 127.0.0.1 in its own process; :meth:`freeze`/:meth:`thaw` stop and resume it."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.ftp_process", str(root)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT_DIR,
            )
        self.port = self._read_port()

    def _read_port(self) -> int:
        def first_line() -> str | None:
            first = self.log.read_text().split("\n", 1)
            return first[0] if len(first) > 1 else None

        poll_until(lambda: first_line() is not None or self.proc.poll() is not None, 30)
        port = first_line()
        if port is not None and port.isdigit():
            return int(port)
        self.stop()
        raise AssertionError(f"FTP server did not start: {self.log.read_text()}")

    def url(self) -> str:
        """The server's URL, as :meth:`ThreadedFtpServer.url` builds it."""
        helper = ThreadedFtpServer.__new__(ThreadedFtpServer)
        helper.flavour, helper.port = "full", self.port
        return helper.url()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT (harmless when not frozen)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Resume, terminate and reap the server (always safe to call)."""
        self.thaw()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _serve(root: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer

    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, root, perm=PERM)
    handler = type("ProcessHandler", (FTPHandler,), {"authorizer": authorizer})
    server = FTPServer((HOST, 0), handler)
    print(server.address[1], flush=True)
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    _serve(sys.argv[1])
