"""FTP and FTPS locations against real pyftpdlib servers on 127.0.0.1.

The shared contract suite covers the everyday behaviour; these tests cover what only a
server can get wrong: logins, outages and reconnects, servers without MLSD or MFMT,
certificates, names a server should never have handed out, and what a poll costs.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from app.errors import AuthenticationFailed, FileChanged, LocationUnavailable
from app.locations import LocationOptions, open_location
from app.locations.base import TEMP_PREFIX, FileMeta, Location
from app.locations.ftp.location import FtpLocation
from tests.ftp_server import PASSWORD, ThreadedFtpServer
from tests.helpers import write_file

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
SECRET = "Xy9-s3cr3t-Qz"


def _write(loc: Location, path: str, data: bytes, mtime_ns: int = T0) -> FileMeta:
    return loc.write(path, io.BytesIO(data), mtime_ns)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_capabilities_follow_the_server(
    ftp_location: Location, ftp_list_location: Location, ftps_location: Location
) -> None:
    for loc in (ftp_location, ftps_location):
        assert loc.capabilities.mtime_precision_ns == NS
        assert loc.capabilities.can_set_mtime
    assert ftp_list_location.capabilities.mtime_precision_ns == NS  # MDTM
    assert not ftp_list_location.capabilities.can_set_mtime
    for loc in (ftp_location, ftp_list_location, ftps_location):
        assert loc.capabilities.can_rename
        assert not loc.capabilities.native_events


def test_label_is_sanitised_host(ftp_location: Location) -> None:
    assert ftp_location.label == "127-0-0-1"


def test_password_with_at_colon_and_slash_logs_in(ftp_server: ThreadedFtpServer) -> None:
    assert "@" in PASSWORD and ":" in PASSWORD and "/" in PASSWORD
    url = ftp_server.url()
    assert "p%40ss%3Aw%2Frd" in url
    loc = ftp_server.location()
    try:
        _write(loc, "x.txt", b"x")
        assert (ftp_server.root / "x.txt").read_bytes() == b"x"
    finally:
        loc.close()


def test_anonymous_login_when_no_user_is_given(ftp_server: ThreadedFtpServer) -> None:
    write_file(ftp_server.root / "pub.txt", "public")
    loc = ftp_server.location(user="")
    try:
        assert set(loc.scan()) == {"pub.txt"}
    finally:
        loc.close()


def test_wrong_password_is_authentication_failed_in_one_line(
    ftp_server: ThreadedFtpServer,
) -> None:
    loc = open_location(ftp_server.url(password=SECRET), LocationOptions(connect_timeout=5))
    with pytest.raises(AuthenticationFailed) as info:
        loc.open()
    message = str(info.value)
    assert "\n" not in message
    assert "password" in message and "alice" in message
    assert SECRET not in message
    with pytest.raises(AuthenticationFailed, match="next attempt"):
        loc.scan()  # backing off: no second guess sent to the server right away
    loc.close()


def test_closed_port_is_unavailable_quickly_and_names_host_and_port() -> None:
    port = _closed_port()
    loc = open_location(f"ftp://alice:{SECRET}@127.0.0.1:{port}/", LocationOptions())
    started = time.monotonic()
    with pytest.raises(LocationUnavailable) as info:
        loc.open()
    assert time.monotonic() - started < 3
    assert f"127.0.0.1:{port}" in str(info.value)
    assert not isinstance(info.value, AuthenticationFailed)
    # Backing off: the next call fails at once instead of knocking again.
    with pytest.raises(LocationUnavailable, match="next attempt"):
        loc.scan()
    loc.close()


def test_password_never_in_errors_logs_or_names(
    ftp_server: ThreadedFtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = open_location(ftp_server.url(password=SECRET), LocationOptions(connect_timeout=5))
    with pytest.raises(AuthenticationFailed) as auth:
        wrong.open()
    loc = ftp_server.location()
    _write(loc, "a.txt", b"a")
    ftp_server.stop()
    with pytest.raises(LocationUnavailable) as down:
        loc.scan()
    texts = [
        str(auth.value),
        repr(auth.value),
        str(down.value),
        repr(wrong),
        wrong.name,
        wrong.key,
        repr(loc),
        loc.name,
        loc.key,
        caplog.text,
    ]
    for text in texts:
        assert SECRET not in text
        assert PASSWORD not in text
    assert "***" in wrong.name
    loc.close()
    wrong.close()
    ftp_server.start()


def test_connection_closed_by_server_is_reopened_transparently(
    ftp_server: ThreadedFtpServer,
) -> None:
    loc = ftp_server.location()
    try:
        _write(loc, "a.txt", b"a")
        ftp_server.stop()  # drops our idle control connection, as an idle timeout would
        ftp_server.start()
        assert set(loc.scan()) == {"a.txt"}
    finally:
        loc.close()


def test_no_mfmt_write_returns_server_time_and_scans_agree(
    ftp_list_location: Location, ftp_list_server: ThreadedFtpServer
) -> None:
    meta = _write(ftp_list_location, "d/a.txt", b"hello")
    on_disk = (ftp_list_server.root / "d" / "a.txt").stat().st_mtime_ns
    assert meta.mtime_ns == on_disk // NS * NS  # the server's clock, not T0
    assert meta.mtime_ns != T0
    assert ftp_list_location.scan() == {"d/a.txt": meta}
    assert ftp_list_location.scan() == {"d/a.txt": meta}  # no ping-pong
    assert ftp_list_location.stat("d/a.txt") == meta


def test_list_mode_asks_mdtm_only_for_changed_lines(
    ftp_list_location: FtpLocation, ftp_list_server: ThreadedFtpServer
) -> None:
    old = time.time() - 3600
    for i in range(10):
        write_file(ftp_list_server.root / "d" / f"{i}.txt", f"{i}", mtime=old)
    first = ftp_list_location.request_count
    listing = ftp_list_location.scan()
    full_cost = ftp_list_location.request_count - first
    assert len(listing) == 10
    second = ftp_list_location.request_count
    assert ftp_list_location.scan() == listing
    idle_cost = ftp_list_location.request_count - second
    assert idle_cost <= full_cost - 10  # ten MDTMs saved
    write_file(ftp_list_server.root / "d" / "3.txt", "three", mtime=old + 60)
    third = ftp_list_location.request_count
    assert ftp_list_location.scan()["d/3.txt"].size == 5
    assert ftp_list_location.request_count - third == idle_cost + 1  # one MDTM


def test_list_mode_sees_same_size_edit_in_the_same_minute(
    ftp_list_location: Location, ftp_list_server: ThreadedFtpServer
) -> None:
    path = ftp_list_server.root / "same.txt"
    now = time.time()
    write_file(path, "aaaa", mtime=now - 20)
    before = ftp_list_location.scan()["same.txt"]
    write_file(path, "bbbb", mtime=now - 5)
    after = ftp_list_location.scan()["same.txt"]
    assert after.mtime_ns > before.mtime_ns


@pytest.mark.parametrize("flavour", ["ftp", "ftp_list"])
def test_unsafe_names_on_the_server_are_skipped(
    flavour: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    server: ThreadedFtpServer = request.getfixturevalue(f"{flavour}_server")
    loc = server.location()
    try:
        write_file(server.root / "back\\slash.txt", "evil")
        write_file(server.root / "c:drive.txt", "evil")
        write_file(server.root / "fine.txt", "ok")
        with caplog.at_level(logging.WARNING):
            assert set(loc.scan()) == {"fine.txt"}
        assert "back\\\\slash.txt" in caplog.text
    finally:
        loc.close()


def test_own_temp_files_and_meta_folder_are_not_listed(
    ftp_location: Location, ftp_server: ThreadedFtpServer
) -> None:
    write_file(ftp_server.root / f"{TEMP_PREFIX}abc", "partial upload")
    write_file(ftp_server.root / ".filesync" / "trash" / "x", "internal")
    write_file(ftp_server.root / ".hidden", "user dot-file")
    assert set(ftp_location.scan()) == {".hidden"}


def test_failed_source_leaves_nothing_behind(
    ftp_location: Location, ftp_server: ThreadedFtpServer
) -> None:
    class Broken(io.RawIOBase):
        sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            if self.sent:
                raise OSError("disk on fire")
            self.sent = len(buffer)
            buffer[:] = b"x" * len(buffer)
            return len(buffer)

    with pytest.raises(OSError, match="disk on fire"):
        ftp_location.write("f.bin", io.BufferedReader(Broken()), T0)
    assert ftp_location.scan() == {}
    assert os.listdir(ftp_server.root) == []


def test_write_leaves_no_temp_file_and_replaces_atomically(
    ftp_location: Location, ftp_server: ThreadedFtpServer
) -> None:
    _write(ftp_location, "a/b.txt", b"one")
    _write(ftp_location, "a/b.txt", b"two")
    assert sorted(os.listdir(ftp_server.root / "a")) == ["b.txt"]
    assert (ftp_server.root / "a" / "b.txt").read_bytes() == b"two"


def test_delete_removes_emptied_folders_only(
    ftp_location: Location, ftp_server: ThreadedFtpServer
) -> None:
    _write(ftp_location, "a/b/c.txt", b"c")
    _write(ftp_location, "a/keep.txt", b"k")
    ftp_location.delete("a/b/c.txt")
    assert not (ftp_server.root / "a" / "b").exists()
    assert (ftp_server.root / "a" / "keep.txt").exists()


def test_stat_many_asks_the_server_now(
    ftp_list_location: Location, ftp_list_server: ThreadedFtpServer
) -> None:
    _write(ftp_list_location, "d/1.txt", b"1")
    _write(ftp_list_location, "d/2.txt", b"2")
    write_file(ftp_list_server.root / "d" / "2.txt", "changed on the server", mtime=1e9)
    stats = ftp_list_location.stat_many(["d/1.txt", "d/2.txt", "d/3.txt", "nope/4.txt"])
    assert stats["d/1.txt"] is not None
    assert stats["d/2.txt"] == FileMeta(21, 1_000_000_000 * NS)
    assert stats["d/3.txt"] is None
    assert stats["nope/4.txt"] is None


def test_partial_read_does_not_break_the_next_call(ftp_location: Location) -> None:
    _write(ftp_location, "big.bin", os.urandom(4 * 1024 * 1024))
    with ftp_location.open_read("big.bin") as stream:
        assert len(stream.read(1000)) == 1000
    assert set(ftp_location.scan()) == {"big.bin"}


def test_ftps_refuses_an_untrusted_certificate(ftps_server: ThreadedFtpServer) -> None:
    loc = open_location(ftps_server.url(verify="yes"), LocationOptions(connect_timeout=5))
    with pytest.raises(LocationUnavailable, match="certificate"):
        loc.open()
    loc.close()


def test_ftps_verify_no_accepts_any_certificate_with_a_warning(
    ftps_server: ThreadedFtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        loc = ftps_server.location(verify="no")
    try:
        _write(loc, "t.txt", b"tls")
        assert set(loc.scan()) == {"t.txt"}
    finally:
        loc.close()
    assert "NOT checked" in caplog.text


def test_ftps_data_is_encrypted_end_to_end(
    ftps_location: Location, ftps_server: ThreadedFtpServer
) -> None:
    meta = _write(ftps_location, "s/secret.txt", b"top secret")
    assert (ftps_server.root / "s" / "secret.txt").read_bytes() == b"top secret"
    assert meta.same_version(ftps_location.stat("s/secret.txt"))


def test_written_time_is_set_with_mfmt(ftp_location: Location, tmp_path: Path) -> None:
    meta = _write(ftp_location, "m.txt", b"m", T0 + 123)
    assert meta.mtime_ns == T0
    assert meta.same_version(ftp_location.scan()["m.txt"])


def test_adopt_marks_the_root_and_a_replaced_root_is_unavailable(
    ftp_server: ThreadedFtpServer,
) -> None:
    loc = ftp_server.location()
    try:
        loc.adopt(False)
        assert (ftp_server.root / ".filesync").is_dir()
        _write(loc, "a.txt", b"a")
        assert set(loc.scan()) == {"a.txt"}
        shutil.rmtree(ftp_server.root / ".filesync")
        (ftp_server.root / "a.txt").unlink()  # the folder was emptied behind our back
        with pytest.raises(LocationUnavailable, match="vanished"):
            loc.scan()  # not {}: that would delete a.txt everywhere else
    finally:
        loc.close()
    again = ftp_server.location()
    try:
        with pytest.raises(LocationUnavailable, match=r"create an empty \.filesync"):
            again.adopt(True)
    finally:
        again.close()


def test_guarded_write_keeps_a_save_made_on_the_server_meanwhile(
    ftp_location: Location, ftp_server: ThreadedFtpServer
) -> None:
    seen = _write(ftp_location, "doc.txt", b"version 1")
    write_file(ftp_server.root / "doc.txt", "saved on the server meanwhile")
    with pytest.raises(FileChanged):
        ftp_location.guarded_write("doc.txt", io.BytesIO(b"version 2"), T0, seen)
    assert (ftp_server.root / "doc.txt").read_text() == "saved on the server meanwhile"
    assert [n for n in os.listdir(ftp_server.root) if n != ".filesync"] == ["doc.txt"]
    current = ftp_location.stat("doc.txt")
    meta = ftp_location.guarded_write("doc.txt", io.BytesIO(b"version 2"), T0, current)
    assert meta.size == 9


def test_commands_one_at_a_time_when_pipelining_is_off(ftp_server: ThreadedFtpServer) -> None:
    loc = ftp_server.location(pipeline="no")
    try:
        meta = _write(loc, "p/q.txt", b"sequential")
        assert meta.same_version(FileMeta(10, T0))
        assert meta == loc.scan()["p/q.txt"]
    finally:
        loc.close()


def test_download_cut_short_by_the_server_raises_not_a_short_file(
    ftp_server: ThreadedFtpServer,
) -> None:
    big = ftp_server.root / "big.bin"
    with big.open("wb") as f:
        for _ in range(32):
            f.write(os.urandom(1024 * 1024))
    loc = ftp_server.location(timeout=2)
    try:
        with pytest.raises(LocationUnavailable), loc.open_read("big.bin") as stream:
            assert len(stream.read(65536)) == 65536
            ftp_server.stop()  # more than any socket buffer is still to come
            while stream.read(1024 * 1024):
                pass
    finally:
        loc.close()
        ftp_server.start()


def test_stat_in_a_folder_that_does_not_exist_is_none(ftp_location: Location) -> None:
    """A new folder elsewhere must not make the server look unavailable while it is checked."""
    assert ftp_location.stat_many(["no/such/dir/a.txt", "no/such/dir/b.txt"]) == {
        "no/such/dir/a.txt": None,
        "no/such/dir/b.txt": None,
    }
    assert ftp_location.stat("nodir/x.txt") is None
