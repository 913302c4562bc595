"""The S3 kind against two real servers (rclone serve s3, moto): what the contract suite
cannot say in general — rclone-compatible times, conditional writes, multipart uploads with
bounded memory, batched deletes, idle cost, refusals, and a server restart mid-sync."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.engine.engine import Engine, EngineSettings
from app.engine.index import StateIndex
from app.engine.status import LocationState
from app.errors import AuthenticationFailed, FileChanged, LocationUnavailable, SpecError
from app.locations import LocationOptions, open_location, parse_spec
from app.locations.base import FileMeta, Location
from app.locations.s3 import location as s3_location
from tests.helpers import describe_trees, tree, wait_until, write_file
from tests.s3_server import BIN, KEY, SECRET, S3Server

T0 = 1_700_000_000_123_456_789


def put(loc: Location, path: str, data: bytes, mtime_ns: int = T0) -> FileMeta:
    with loc.batch():
        return loc.write(path, io.BytesIO(data), mtime_ns)


# --- the spec ---------------------------------------------------------------------------


def test_spec_forms_and_options() -> None:
    spec = parse_spec("s3://AKIDEXAMPLE:se%2Fcret@my-bucket/photos/2024?endpoint=http://h:9000")
    assert (spec.kind, spec.host, spec.path, spec.user) == ("s3", "my-bucket", "/photos/2024",
                                                            "AKIDEXAMPLE")  # fmt: skip
    assert spec.password == "se/cret" and "se/cret" not in spec.redacted + spec.key + repr(spec)
    assert spec.option("endpoint") == "http://h:9000"
    assert parse_spec("s3:bucket").path == "/"
    assert parse_spec("s3://bucket?region=eu-west-1&profile=work&path_style=no").option("region")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("s3://bucket/x?colour=red", "unknown option 'colour'"),
        ("s3://bucket/x?endpoint=ftp://h", "endpoint must be an http"),
        ("s3://bucket:9000/x", "a bucket has no port"),
        ("s3://bucket/x?path_style=maybe", "path_style must be yes or no"),
        ("s3://k:topsecret@bucket/../x", "must not contain '..'"),
    ],
)
def test_bad_specs_are_one_line_errors(text: str, why: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(text)
    assert why in str(err.value) and "\n" not in str(err.value)
    assert "topsecret" not in str(err.value)


# --- refusals ---------------------------------------------------------------------------


def test_bad_credentials_are_one_line_and_never_show_the_secret(server: S3Server) -> None:
    bucket = server.new_bucket()
    if server.flavour == "moto":
        pytest.skip("moto accepts any key")
    location = open_location(server.url(bucket, secret="wrong-secret-123"))
    with pytest.raises(AuthenticationFailed) as err:
        location.open()
    text = str(err.value)
    assert "refused the access key" in text and "\n" not in text
    assert "wrong-secret-123" not in text and SECRET not in text


def test_missing_bucket_is_a_one_line_error(server: S3Server) -> None:
    location = open_location(server.url("no-such-bucket-here"))
    with pytest.raises(LocationUnavailable) as err:
        location.open()
    assert "'no-such-bucket-here'" in str(err.value) and "does not exist" in str(err.value)
    assert "\n" not in str(err.value) and SECRET not in str(err.value)


def test_credentials_come_from_the_aws_chain(
    server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bucket = server.new_bucket()
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[work]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    location = open_location(server.url(bucket, key=None, profile="work"))
    location.open()
    assert location.scan() == {}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    location = open_location(server.url(bucket, key=None))
    location.open()
    assert location.scan() == {}


# --- times, tags and guarded writes ----------------------------------------------------


def test_mtime_is_stored_as_rclone_metadata(server: S3Server, bucket: str, loc: Location) -> None:
    put(loc, "a.txt", b"hello")
    head = server.client().head_object(Bucket=bucket, Key="root/a.txt")
    assert {k.lower(): v for k, v in head["Metadata"].items()}["mtime"] == "1700000000.123456789"
    assert loc.scan()["a.txt"].mtime_ns == T0


def test_a_file_rclone_uploaded_reads_with_its_time(
    server: S3Server, bucket: str, loc: Location, tmp_path: Path
) -> None:
    local = write_file(tmp_path / "by-rclone.txt", b"from rclone", mtime=1_600_000_000.25)
    remote = f"hub:{bucket}/root/by-rclone.txt"
    with (tmp_path / "rclone-client.log").open("wb") as out:
        subprocess.run([str(BIN / "rclone"), "copyto", str(local), remote], env=server.rclone_env(),
                       stdout=out, stderr=subprocess.STDOUT, check=True, timeout=60)  # fmt: skip
    assert loc.scan()["by-rclone.txt"].mtime_ns == 1_600_000_000_250_000_000


def test_objects_without_mtime_use_last_modified(
    server: S3Server, bucket: str, loc: Location
) -> None:
    server.client().put_object(Bucket=bucket, Key="root/plain.txt", Body=b"plain")
    meta = loc.scan()["plain.txt"]
    assert abs(meta.mtime_ns / 1e9 - time.time()) < 120
    assert loc.stat("plain.txt") == meta


def test_conditional_writes_are_probed_and_changes_refused(
    server: S3Server, bucket: str, loc: Location
) -> None:
    assert loc.capabilities.checks_on_write is (server.flavour == "moto")
    first = put(loc, "doc.txt", b"one")
    server.client().put_object(Bucket=bucket, Key="root/doc.txt", Body=b"someone else")
    with pytest.raises(FileChanged):
        loc.guarded_write("doc.txt", io.BytesIO(b"mine"), T0, first)
    with pytest.raises(FileChanged):
        loc.guarded_write("doc.txt", io.BytesIO(b"mine"), T0, None)
    current = loc.stat("doc.txt")
    loc.guarded_write("doc.txt", io.BytesIO(b"mine"), T0, current)
    assert server.keys(bucket, "root/")["doc.txt"] == b"mine"


def test_clock_offset_is_measured_against_the_servers_date(loc: Location) -> None:
    assert abs(loc.clock_offset_s) < 2.5  # type: ignore[attr-defined]  # same machine


# --- costs ------------------------------------------------------------------------------


def test_idle_poll_is_one_listing_request(loc: Location) -> None:
    for i in range(30):
        put(loc, f"d{i % 3}/f{i}.txt", b"x" * i)
    first = loc.scan()
    before = loc.request_count  # type: ignore[attr-defined]
    assert loc.scan() == first
    assert loc.request_count - before == 1  # type: ignore[attr-defined]


def test_deletes_in_a_batch_go_out_together(server: S3Server, bucket: str, loc: Location) -> None:
    for i in range(40):
        put(loc, f"gone/{i}.txt", b"x")
    put(loc, "kept.txt", b"k")
    before = loc.request_count  # type: ignore[attr-defined]
    with loc.batch():
        for i in range(40):
            loc.delete(f"gone/{i}.txt")
    assert loc.request_count - before == 1  # type: ignore[attr-defined]
    assert set(server.keys(bucket, "root/")) == {"kept.txt"}


# --- multipart ----------------------------------------------------------------------------

UPLOADER = """
import hashlib, io, json, sys
from app.locations import LocationOptions, open_location

class Source(io.RawIOBase):
    def __init__(self, size, fail_at=None):
        self.left, self.fail_at, self.sent = size, fail_at, 0
        self.md5 = hashlib.md5()
    def readable(self):
        return True
    def readinto(self, b):
        if self.fail_at is not None and self.sent >= self.fail_at:
            raise OSError("the source disk failed")
        n = min(len(b), self.left, 1 << 20)
        chunk = bytes((self.sent + i) % 251 for i in range(256)) * (n // 256) + bytes(n % 256)
        b[:n] = chunk
        self.md5.update(chunk)
        self.left -= n
        self.sent += n
        return n

url, size, fail_at = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
loc = open_location(url, LocationOptions(connect_timeout=10))
loc.open()
loc.adopt(False)
source = Source(size, fail_at)
error = ""
try:
    meta = loc.write("big.bin", io.BufferedReader(source), 1_700_000_000_000_000_000)
except OSError as exc:
    error = str(exc)
# VmHWM, not ru_maxrss: that one keeps the forking parent's peak across exec.
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
peak = int(status["VmHWM"].split()[0]) / 1024
print(json.dumps({"md5": source.md5.hexdigest(), "error": error, "peak_mib": peak}))
"""


def run_uploader(url: str, size: int, tmp: Path, fail_at: int | None = None) -> dict[str, str]:
    log = tmp / "uploader.log"
    with log.open("wb") as err:
        out = subprocess.run([sys.executable, "-c", UPLOADER, url, str(size), json.dumps(fail_at)],
                             stdout=subprocess.PIPE, stderr=err, check=False, timeout=600,
                             cwd=Path(__file__).parent.parent)  # fmt: skip
    assert out.returncode == 0, log.read_text()
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_large_file_is_a_multipart_upload_with_bounded_memory(
    server: S3Server, bucket: str, tmp_path: Path
) -> None:
    size = 96 * 1024 * 1024 + 12345  # held whole, it alone would break the bound
    result = run_uploader(server.url(bucket, "root"), size, tmp_path)
    assert not result["error"]
    assert float(result["peak_mib"]) < 150, result
    client = server.client()
    head = client.head_object(Bucket=bucket, Key="root/big.bin")
    assert head["ContentLength"] == size
    if server.flavour == "moto":  # rclone stores a file and reports its plain MD5
        assert "-" in head["ETag"]  # a multipart upload's ETag
    digest = hashlib.md5()
    for chunk in client.get_object(Bucket=bucket, Key="root/big.bin")["Body"].iter_chunks(1 << 20):
        digest.update(chunk)
    assert digest.hexdigest() == result["md5"]


def test_a_failed_multipart_upload_is_aborted(
    server: S3Server, bucket: str, tmp_path: Path
) -> None:
    result = run_uploader(server.url(bucket, "root"), 40 << 20, tmp_path, fail_at=20 << 20)
    assert result["error"] == "the source disk failed"
    client = server.client()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert "big.bin" not in server.keys(bucket, "root/")


def test_uploads_a_crash_abandoned_are_aborted_by_housekeeping(
    server: S3Server, bucket: str, loc: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = server.client()
    mine = client.create_multipart_upload(Bucket=bucket, Key="root/half.bin")["UploadId"]
    other = client.create_multipart_upload(Bucket=bucket, Key="elsewhere/x.bin")["UploadId"]
    loc.housekeeping()  # started just now: may still be running on another machine
    if server.flavour == "rclone":  # moto dates every upload in 2010
        listed = {u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket)["Uploads"]}
        assert mine in listed
    monkeypatch.setattr(s3_location, "ABANDONED_AFTER_S", 0.0)
    loc.housekeeping()
    listed = {
        u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    }
    assert mine not in listed and other in listed  # only under our prefix


# --- one machine, engine running -----------------------------------------------------------


class Rig:
    """An engine over a folder and a bucket prefix, with its own state."""

    def __init__(self, tmp: Path, url: str, name: str = "a") -> None:
        self.folder = tmp / name
        self.folder.mkdir()
        self.index = StateIndex(tmp / f"state-{name}" / "index.sqlite")
        locations = [open_location(f"folder:{self.folder}"),
                     open_location(url, LocationOptions(connect_timeout=3))]  # fmt: skip
        self.engine = Engine(
            locations, self.index, EngineSettings(debounce=0.03, poll_interval=0.2)
        )

    def close(self) -> None:
        self.engine.stop()
        self.index.close()


def test_another_clients_puts_and_deletes_are_pulled(
    server: S3Server, bucket: str, tmp_path: Path
) -> None:
    rig = Rig(tmp_path, server.url(bucket, "root"))
    try:
        write_file(rig.folder / "mine.txt", b"mine")
        rig.engine.start()
        wait_until(lambda: server.keys(bucket, "root/").get("mine.txt") == b"mine")
        client = server.client()
        client.put_object(Bucket=bucket, Key="root/theirs/new.txt", Body=b"theirs",
                          Metadata={"mtime": "1700000000.5"})  # fmt: skip
        wait_until(lambda: tree(rig.folder).get("theirs/new.txt") == b"theirs")
        assert (rig.folder / "theirs/new.txt").stat().st_mtime_ns == 1_700_000_000_500_000_000
        client.delete_object(Bucket=bucket, Key="root/mine.txt")
        wait_until(lambda: "mine.txt" not in tree(rig.folder))
    finally:
        rig.close()


def s3_state(engine: Engine) -> LocationState | None:
    """The engine's state for its S3 location (None until it has a row)."""
    rows = [row for row in engine.status().locations if row.kind == "s3"]
    return rows[0].state if rows else None


def test_server_stopped_and_restarted_mid_sync_loses_nothing(tmp_path: Path) -> None:
    server = S3Server("rclone", tmp_path / "server")
    server.start()
    rig: Rig | None = None
    try:
        bucket = server.new_bucket()
        rig = Rig(tmp_path, server.url(bucket, "root"))
        files = {f"batch/{i:03d}.bin": os.urandom(20_000 + i) for i in range(150)}
        for name, data in files.items():
            write_file(rig.folder / name, data)
        rig.engine.start(watch=True)
        wait_until(lambda: len(list((server.root / bucket / "root/batch").glob("*"))) > 10)
        server.stop()  # mid-sync
        location = open_location(server.url(bucket, "root"), LocationOptions(connect_timeout=2))
        with pytest.raises(LocationUnavailable):
            location.scan()  # a listing that fails is never "empty"
        wait_until(lambda: s3_state(rig.engine) is LocationState.UNAVAILABLE, timeout=60)
        write_file(rig.folder / "while-down.txt", b"made while the server was down")
        server.start()
        expected = {**files, "while-down.txt": b"made while the server was down"}
        landed = server.root / bucket / "root"
        wait_until(lambda: server.keys(bucket, "root/") == expected, timeout=120,
                   message=lambda: describe_trees(rig.folder, landed))  # fmt: skip
        assert tree(rig.folder) == expected
    finally:
        if rig is not None:
            rig.close()
        server.stop()
