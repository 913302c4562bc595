"""SFTP locations against real servers: OpenSSH's sshd and ``rclone serve sftp`` on 127.0.0.1.

Host keys, logins, faults and names; the shared rules are in ``test_contract.py``.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from app.errors import (
    AuthenticationFailed,
    HostKeyChanged,
    LocationUnavailable,
    UnknownHostKey,
)
from app.locations import LocationOptions, open_location, parse_spec
from app.locations.sftp import hostkeys
from app.locations.sftp.location import SftpLocation
from tests.helpers import tree, wait_until, write_file
from tests.sshd_server import HOST, RCLONE_PASSWORD, SftpServer, free_port, keygen
from tests.writes import NS, T0
from tests.writes import write_bytes as _write


def _fingerprint(server: SftpServer) -> str:
    import paramiko

    key = paramiko.PKey.from_path(server.host_key)
    return hostkeys.fingerprint(key)


def test_spec_forms_and_home() -> None:
    spec = parse_spec("sftp://me:p%40ss@nas.local:2222/~/Sync?key=/k/id&known_hosts=/k/kh")
    assert (spec.kind, spec.host, spec.port, spec.user, spec.password) == (
        "sftp", "nas.local", 2222, "me", "p@ss",
    )  # fmt: skip
    assert spec.path == "/~/Sync" and spec.option("key") == "/k/id"
    assert spec.redacted == "sftp://me:***@nas.local:2222/~/Sync"
    short = parse_spec("sftp:me@nas/srv/data")
    assert (short.host, short.port, short.path) == ("nas", 22, "/srv/data")
    assert short.key == "sftp://me@nas:22/srv/data"


def test_unknown_host_key_is_refused_with_its_fingerprint_and_nothing_written(
    sshd_server: SftpServer,
) -> None:
    sshd_server.known_hosts.write_text("")
    loc = open_location(sshd_server.url(), LocationOptions(connect_timeout=5))
    with pytest.raises(UnknownHostKey) as info:
        loc.open()
    message = str(info.value)
    assert "\n" not in message
    assert _fingerprint(sshd_server) in message
    assert f"ssh-keyscan -p {sshd_server.port} {HOST} >> {sshd_server.known_hosts}" in message
    assert info.value.fingerprint == _fingerprint(sshd_server)
    assert sshd_server.known_hosts.read_text() == ""  # never trusted silently
    loc.close()
    assert list(sshd_server.root.iterdir()) == []

    hostkeys.trust(loc.spec, info.value.known_hosts_line)  # "Trust this host" after seeing it
    trusted = sshd_server.location()
    try:
        _write(trusted, "a.txt", b"a")
        assert tree(sshd_server.root) == {"a.txt": b"a"}
    finally:
        trusted.close()


def test_changed_host_key_is_refused_loudly_and_nothing_written(
    sshd_server: SftpServer,
) -> None:
    loc = sshd_server.location()
    _write(loc, "before.txt", b"before")
    sshd_server.stop()
    sshd_server.new_host_key()
    sshd_server.start()
    with pytest.raises(HostKeyChanged) as info:
        _write(loc, "after.txt", b"after")
    message = str(info.value)
    assert "HAS CHANGED" in message and _fingerprint(sshd_server) in message
    assert "\n" not in message
    assert tree(sshd_server.root) == {"before.txt": b"before"}
    loc.close()


def test_wrong_key_is_authentication_failed_in_one_line(
    sshd_server: SftpServer, tmp_path: Path
) -> None:
    other = keygen(tmp_path / "other_key")
    loc = open_location(sshd_server.url(key=str(other)), LocationOptions(connect_timeout=5))
    with pytest.raises(AuthenticationFailed) as info:
        loc.open()
    message = str(info.value)
    assert "\n" not in message and "root" in message and str(other) in message
    with pytest.raises(AuthenticationFailed, match="next attempt"):
        loc.scan()  # backing off: no second try right away
    loc.close()


def test_passphrase_protected_key_is_a_clear_error_or_uses_the_password(
    sshd_server: SftpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    locked = keygen(tmp_path / "locked_key", passphrase="open sesame")
    authorized = sshd_server.dir / "authorized_keys"
    authorized.write_text(authorized.read_text() + locked.with_suffix(".pub").read_text())
    bare = open_location(sshd_server.url(key=str(locked)), LocationOptions(connect_timeout=5))
    with pytest.raises(AuthenticationFailed, match="protected by a passphrase"):
        bare.open()
    bare.close()
    url = sshd_server.url(key=str(locked), password="open sesame")
    loc = open_location(url, LocationOptions(connect_timeout=5))
    loc.open()
    try:
        _write(loc, "x.txt", b"x")
        assert "open sesame" not in caplog.text and "open sesame" not in loc.name
    finally:
        loc.close()


def test_default_keys_in_home_ssh_are_used(sshd_server: SftpServer, ssh_home: Path) -> None:
    shutil.copy(sshd_server.client_key, ssh_home / ".ssh" / "id_ed25519")
    loc = sshd_server.location(key="")
    try:
        assert loc.scan() == {}
    finally:
        loc.close()


def test_password_login_and_wrong_password(
    rclone_server: SftpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = open_location(
        rclone_server.url(password="not-it-3141"), LocationOptions(connect_timeout=5)
    )
    with pytest.raises(AuthenticationFailed) as info:
        wrong.open()
    assert "not-it-3141" not in str(info.value) and "bob" in str(info.value)
    wrong.close()
    loc = rclone_server.location()
    try:
        _write(loc, "pw.txt", b"pw")
        assert (rclone_server.root / "pw.txt").read_bytes() == b"pw"
    finally:
        loc.close()
    assert RCLONE_PASSWORD not in caplog.text and "not-it-3141" not in caplog.text


def test_closed_port_is_unavailable_and_names_host_and_port(ssh_home: Path) -> None:
    port = free_port()
    loc = open_location(f"sftp://me@{HOST}:{port}/x", LocationOptions(connect_timeout=3))
    with pytest.raises(LocationUnavailable) as info:
        loc.open()
    assert f"{HOST}:{port}" in str(info.value)
    assert not isinstance(info.value, AuthenticationFailed)
    with pytest.raises(LocationUnavailable, match="next attempt"):
        loc.scan()
    loc.close()


def test_tilde_is_the_login_home(sshd_server: SftpServer) -> None:
    (sshd_server.home / "Sync").mkdir()
    loc = sshd_server.location(path="/~/Sync")
    try:
        _write(loc, "h.txt", b"home")
        assert (sshd_server.home / "Sync" / "h.txt").read_bytes() == b"home"
    finally:
        loc.close()


def test_adopt_marks_the_root_and_a_replaced_root_is_unavailable(
    sshd_server: SftpServer,
) -> None:
    loc = sshd_server.location()
    try:
        loc.adopt(has_history=False)
        _write(loc, "a.txt", b"a")
        assert (sshd_server.root / ".filesync").is_dir()
        shutil.rmtree(sshd_server.root / ".filesync")
        with pytest.raises(LocationUnavailable, match="vanished"):
            loc.scan()
    finally:
        loc.close()
    again = sshd_server.location()
    with pytest.raises(LocationUnavailable, match="gone"):
        again.adopt(has_history=True)
    again.close()


def test_a_partial_read_does_not_break_the_next_call(sshd_server: SftpServer) -> None:
    loc = sshd_server.location()
    try:
        _write(loc, "big.bin", b"x" * 3_000_000)
        with loc.open_read("big.bin") as f:
            assert f.read(10) == b"x" * 10
        assert set(loc.scan()) == {"big.bin"}
        with loc.open_read("big.bin") as f:
            assert len(f.read()) == 3_000_000
    finally:
        loc.close()


def test_guarded_write_keeps_a_save_made_on_the_server_meanwhile(
    sshd_server: SftpServer,
) -> None:
    loc = sshd_server.location()
    try:
        old = _write(loc, "doc.txt", b"old")
        write_file(sshd_server.root / "doc.txt", "saved on the server", mtime=T0 / NS + 5)
        from app.errors import FileChanged

        with pytest.raises(FileChanged):
            loc.guarded_write("doc.txt", io.BytesIO(b"ours"), T0, old)
        assert (sshd_server.root / "doc.txt").read_text() == "saved on the server"
        assert [p.name for p in sshd_server.root.iterdir() if p.name != ".filesync"] == ["doc.txt"]
    finally:
        loc.close()


def test_links_on_the_server_are_reported_not_followed(sshd_server: SftpServer) -> None:
    (sshd_server.root / "real").mkdir()
    write_file(sshd_server.root / "real" / "f.txt", "f")
    (sshd_server.root / "link").symlink_to(sshd_server.root / "real")
    loc = sshd_server.location()
    try:
        assert set(loc.scan()) == {"real/f.txt"}
        assert loc.links() == frozenset({"link"})
    finally:
        loc.close()


def test_capabilities(sshd_server: SftpServer) -> None:
    loc = sshd_server.location()
    assert isinstance(loc, SftpLocation)
    caps = loc.capabilities
    assert (caps.mtime_precision_ns, caps.can_set_mtime, caps.can_rename) == (NS, True, True)
    assert not caps.native_events
    assert loc.label == "127-0-0-1"
    loc.close()


def test_another_programs_same_second_same_size_edit_is_seen_once_the_second_is_over(
    sshd_server: SftpServer,
) -> None:
    loc = sshd_server.location()
    try:
        wait_until(lambda: time.time() % 1 < 0.3, message="the start of a second", interval=0.005)
        write_file(sshd_server.root / "doc.txt", "version 1")
        first = loc.scan()["doc.txt"]
        write_file(sshd_server.root / "doc.txt", "version 2")  # same size, same second
        assert int((sshd_server.root / "doc.txt").stat().st_mtime) == first.mtime_ns // NS
        wait_until(lambda: loc.scan()["doc.txt"] != first, timeout=10, message="a changed tag")
        later = loc.scan()["doc.txt"]
        assert later.same_version(first) and later.tag != first.tag
        assert loc.scan()["doc.txt"] == later  # stable from then on: no endless re-reads
    finally:
        loc.close()


def test_the_ssh_agents_keys_are_used_first(
    sshd_server: SftpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = tmp_path / "agent.sock"
    with open(tmp_path / "agent.log", "ab") as log:
        agent = subprocess.Popen(
            ["ssh-agent", "-D", "-a", str(sock)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(sock.exists, 10, "the agent's socket")
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        with open(tmp_path / "agent.log", "ab") as log:
            subprocess.run(
                ["ssh-add", str(sshd_server.client_key)], check=True, stdout=log, stderr=log
            )
        loc = sshd_server.location(key="")  # no ?key=, nothing in ~/.ssh: only the agent
        try:
            _write(loc, "via-agent.txt", b"agent")
            assert (sshd_server.root / "via-agent.txt").read_bytes() == b"agent"
        finally:
            loc.close()
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_a_read_only_location_marks_and_cleans_up_nothing(sshd_server: SftpServer) -> None:
    stale = write_file(sshd_server.root / ".filesync-tmp-0123", "half", mtime=time.time() - 7200)
    loc = open_location(sshd_server.url(), LocationOptions(connect_timeout=5, read_only=True))
    assert loc.reads_only
    loc.open()
    try:
        loc.adopt(has_history=False)
        assert loc.scan() == {}
        assert stale.exists() and not (sshd_server.root / ".filesync").exists()
    finally:
        loc.close()
