"""pytest plugin: real S3 servers on 127.0.0.1, each a child process with its output in a file.

Two independent implementations, because FileSync must work with both behaviours:

* ``rclone serve s3`` over a temp folder (a bucket is a folder in it): ignores ``If-Match`` /
  ``If-None-Match``, keeps ``mtime`` metadata only in memory (a restart loses it) and keeps
  its files on disk, so it can be stopped and restarted;
* ``moto_server``: AWS's behaviour, conditions honoured, everything in memory.

Both are started once per session; every test gets its own fresh bucket. ``S3Server`` can also
be started per test (restart tests). Servers bind to 127.0.0.1 only and stop with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import boto3
import pytest
from botocore.config import Config

from app.locations import LocationOptions, open_location
from app.locations.base import Location
from tests.helpers import SESSION_PIDS, poll_until

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

HOST = "127.0.0.1"
KEY = "filesync-test-key"
#: Characters a URL must encode, so the spec's percent-decoding is exercised everywhere.
SECRET = "s3cret/with+odd=chars"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _listens(port: int) -> bool:
    """True once something accepts connections on ``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class S3Server:
    """One S3 server child process (``rclone`` or ``moto``) on a fixed port until :meth:`stop`."""

    def __init__(self, flavour: str, workdir: Path) -> None:
        self.flavour = flavour
        self.workdir = workdir
        self.root = workdir / "buckets"  # rclone: one folder per bucket
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{flavour}.log"
        #: The secret rclone accepts for KEY (change it, then restart, to revoke the old one).
        self.secret = SECRET

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it answers."""
        if self.flavour == "rclone":
            cmd = [str(BIN / "rclone"), "serve", "s3", "--addr", f"{HOST}:{self.port}",
                   "--auth-key", f"{KEY},{self.secret}", str(self.root)]  # fmt: skip
        else:
            cmd = [str(BIN / "moto_server"), "-H", HOST, "-p", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        proc = self.proc
        listening = poll_until(lambda: proc.poll() is not None or _listens(self.port), 60)
        if proc.poll() is not None:
            raise RuntimeError(f"{self.flavour} exited: {self.log.read_text()[-2000:]}")
        if not listening:
            raise RuntimeError(f"{self.flavour} did not start listening on {self.port}")

    def stop(self) -> None:
        """SIGTERM the server and reap it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def client(self, key: str = KEY, secret: str = SECRET) -> S3Client:
        """A plain boto3 client: "another program" using the same bucket."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 1},
            ),
        )

    def rclone_env(self, remote: str = "hub") -> dict[str, str]:
        """Environment for an ``rclone`` client with ``REMOTE:`` pointing at this server."""
        prefix = f"RCLONE_CONFIG_{remote.upper()}_"
        settings = {"TYPE": "s3", "PROVIDER": "Other", "ENDPOINT": self.endpoint,
                    "ACCESS_KEY_ID": KEY, "SECRET_ACCESS_KEY": SECRET}  # fmt: skip
        return {**os.environ, "RCLONE_CONFIG": os.devnull,
                **{prefix + k: v for k, v in settings.items()}}  # fmt: skip

    def new_bucket(self) -> str:
        """A fresh empty bucket."""
        name = f"b{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def url(
        self,
        bucket: str,
        prefix: str = "",
        key: str | None = KEY,
        secret: str = SECRET,
        **options: str,
    ) -> str:
        """An ``s3://`` URL for ``bucket``/``prefix`` on this server."""
        cred = f"{quote(key, safe='')}:{quote(secret, safe='')}@" if key else ""
        query = {"endpoint": self.endpoint, **options}
        text = "&".join(f"{k}={quote(v, safe='/:')}" for k, v in query.items())
        return f"s3://{cred}{bucket}/{prefix}?{text}"

    def location(self, bucket: str, prefix: str = "", timeout: float = 5.0, **kw: Any) -> Location:
        """An opened location on ``bucket`` (the caller closes it)."""
        loc = open_location(
            self.url(bucket, prefix, **kw), LocationOptions(connect_timeout=timeout)
        )
        loc.open()
        return loc

    def keys(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under ``prefix`` (FileSync's own ``.filesync/`` left out) with its bytes."""
        client = self.client()
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) :]
                if rel.startswith(".filesync/"):
                    continue
                found[rel] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        return found


@pytest.fixture(scope="session")
def s3_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, S3Server]]:
    """Both servers, started once for the session (each test uses its own bucket)."""
    servers = {f: S3Server(f, tmp_path_factory.mktemp(f"s3-{f}")) for f in ("rclone", "moto")}
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    try:
        for server in servers.values():
            server.start()
            assert server.proc is not None
            SESSION_PIDS.add(server.proc.pid)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def rclone_s3(s3_servers: dict[str, S3Server]) -> S3Server:
    return s3_servers["rclone"]


@pytest.fixture
def moto_s3(s3_servers: dict[str, S3Server]) -> S3Server:
    return s3_servers["moto"]


def _opened(server: S3Server) -> Iterator[Location]:
    loc = server.location(server.new_bucket(), "sync/root")
    loc.adopt(has_history=False)
    yield loc
    loc.close()


@pytest.fixture
def s3_rclone_location(rclone_s3: S3Server) -> Iterator[Location]:
    """An opened location under a prefix of a fresh bucket on ``rclone serve s3``."""
    yield from _opened(rclone_s3)


@pytest.fixture
def s3_moto_location(moto_s3: S3Server) -> Iterator[Location]:
    """An opened location under a prefix of a fresh bucket on moto."""
    yield from _opened(moto_s3)
