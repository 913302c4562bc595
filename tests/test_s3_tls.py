"""An S3 endpoint over HTTPS whose certificate is trusted through a CA bundle setting.

botocore trusts ``AWS_CA_BUNDLE`` (or ``ca_bundle`` in the config) and ``REQUESTS_CA_BUNDLE``;
the direct PUTs and listings trust the system's CAs only, so with either set they step aside
and the client sends everything. A real ``rclone serve s3`` on 127.0.0.1 with its own
self-signed certificate (made by ``openssl``).
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from app.locations import LocationOptions, open_location
from app.locations.s3.location import S3Location
from tests.helpers import poll_until
from tests.s3_server import BIN, KEY, SECRET, _listens, free_port

SECOND = 1_000_000_000


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """``(port, certificate)`` of an HTTPS S3 server on 127.0.0.1 with a bucket ``bkt``."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    root = tmp_path / "buckets"
    (root / "bkt").mkdir(parents=True)
    port = free_port()
    with open(tmp_path / "rclone.log", "wb") as log:
        process = subprocess.Popen(
            [str(BIN / "rclone"), "serve", "s3", "--addr", f"127.0.0.1:{port}",
             "--cert", str(cert), "--key", str(key), "--auth-key", f"{KEY},{SECRET}", str(root)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        assert poll_until(lambda: _listens(port), 30), (tmp_path / "rclone.log").read_text()
        yield port, cert
    finally:
        process.terminate()
        process.wait(30)


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE"])
def test_a_ca_bundle_setting_is_honoured_for_every_upload(
    tls_server: tuple[int, Path], monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    port, cert = tls_server
    for name in ("REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, str(cert))
    url = (f"s3://{KEY}:{quote(SECRET, safe='')}@bkt/root"
           f"?endpoint=https://127.0.0.1:{port}&path_style=yes")  # fmt: skip
    loc = open_location(url, LocationOptions(connect_timeout=5))
    assert isinstance(loc, S3Location)
    loc.open()
    loc.adopt(has_history=False)
    try:
        for i in range(3):
            loc.write(f"f{i}.txt", io.BytesIO(b"file %d" % i), SECOND)
        assert loc._conn._direct is None  # the client sent them, trusting the bundle
        assert {p: m.size for p, m in loc.scan().items()} == {f"f{i}.txt": 6 for i in range(3)}
    finally:
        loc.close()
