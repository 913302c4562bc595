"""``filesync run --web``, ``filesync status`` and the dashboard's options, as real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import trustme

from tests.helpers import tree, wait_until, write_file

URL = re.compile(r"dashboard: (https?://127\.0\.0\.1:\d+/)")


def filesync(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start(tmp_path: Path, *web: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    a.mkdir()
    b.mkdir()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "run",
                f"folder:{a}",
                f"folder:{b}",
                "--state",
                str(state),
                *web,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, state, log


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def test_run_web_logs_its_address_and_status_reads_it_through_the_api(tmp_path: Path) -> None:
    proc, state, log = start(tmp_path, "--web", "127.0.0.1:0")
    try:
        wait_until(lambda: URL.search(log.read_text()), message="the dashboard line")
        url = URL.search(log.read_text())
        assert url is not None
        token_file = state / "api-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        write_file(tmp_path / "a" / "x.txt", "x")
        wait_until(lambda: "x.txt" in tree(tmp_path / "b"), message="sync")

        text = filesync("status", "--state", str(state))
        assert text.returncode == 0, text.stderr
        assert text.stdout.startswith("FileSync is running")
        assert f"synced      folder:{tmp_path / 'a'}" in text.stdout

        raw = filesync("status", "--state", str(state), "--json")
        assert raw.returncode == 0, raw.stderr
        assert {row["state"] for row in json.loads(raw.stdout)["locations"]} == {"synced"}
    finally:
        assert stop(proc) == 0, log.read_text()
    output = log.read_text()
    assert output.count("dashboard: ") == 1
    assert token_file.read_text().strip() not in output
    assert not (state / "dashboard.json").exists()
    gone = filesync("status", "--state", str(state))
    assert gone.returncode == 1
    assert gone.stdout == ""
    assert len(gone.stderr.splitlines()) == 1
    assert "no FileSync" in gone.stderr


def test_status_with_nothing_running_is_one_line(tmp_path: Path) -> None:
    result = filesync("status", "--state", str(tmp_path / "state"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "no FileSync with a dashboard is running" in result.stderr


def test_other_computers_are_refused_without_tls(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.mkdir()
    result = filesync("run", f"folder:{a}", f"folder:{a}2", "--web", "0.0.0.0:0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--web-cert" in result.stderr
    assert not (tmp_path / "a2").exists()  # refused before anything started


def test_a_location_taken_for_the_web_address_is_a_usage_error(tmp_path: Path) -> None:
    result = filesync("run", "--web", f"folder:{tmp_path}", f"folder:{tmp_path}/b")
    assert result.returncode == 2
    assert "argument --web: expected HOST:PORT" in result.stderr
    assert "after the locations" in result.stderr


def test_with_a_certificate_the_dashboard_speaks_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    proc, state, log = start(
        tmp_path, "--web", "127.0.0.1:0", "--web-cert", str(cert_file), "--web-key", str(key_file)
    )
    try:
        wait_until(lambda: URL.search(log.read_text()), message="the dashboard line")
        assert "dashboard: https://" in log.read_text()
        result = filesync("status", "--state", str(state), "--json")
        assert result.returncode == 0, result.stderr
        assert len(json.loads(result.stdout)["locations"]) == 2
    finally:
        assert stop(proc) == 0, log.read_text()


def test_web_addresses() -> None:
    from app.web.bind import Bind, WebAddressError, parse_bind

    assert parse_bind("127.0.0.1:0") == Bind("127.0.0.1", 0)
    assert parse_bind(":9000") == Bind("127.0.0.1", 9000)
    assert parse_bind("9000") == Bind("127.0.0.1", 9000)
    assert parse_bind("[::1]:9000") == Bind("::1", 9000)
    assert parse_bind("localhost") == Bind("localhost", 8390)
    for bad in ("x:y", "a:1:2", "1.2.3.4:70000", "folder:/tmp"):
        try:
            parse_bind(bad)
        except WebAddressError:
            continue
        raise AssertionError(bad)
    assert Bind("::1", 1).loopback and Bind("localhost", 1).loopback
    assert not Bind("0.0.0.0", 1).loopback and not Bind("192.168.1.2", 1).loopback


def test_dashboard_command_opens_the_browser_logged_in(tmp_path: Path) -> None:
    from tests.web_fixtures import Client

    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(
        f"import sys, pathlib\npathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n"
    )
    proc, state, log = start(tmp_path, "--web", "127.0.0.1:0")
    try:
        wait_until(lambda: URL.search(log.read_text()), message="the dashboard line")
        result = subprocess.run(
            [sys.executable, "-m", "app", "dashboard", "--state", str(state)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "BROWSER": f"{sys.executable} {browser} %s"},
        )
        assert result.returncode == 0, result.stderr
        wait_until(opened.exists, message="the browser to be started")
        base, token = opened.read_text().strip().split("?token=")
        client = Client(base)
        assert client.login(token).status == 303
        assert len(client.get("/api/status").json()["locations"]) == 2
    finally:
        assert stop(proc) == 0, log.read_text()
    assert token not in log.read_text()


def test_web_with_once_is_a_usage_error(tmp_path: Path) -> None:
    result = filesync("run", f"folder:{tmp_path}/a", f"folder:{tmp_path}/b", "--once", "--web")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--once" in result.stderr


def test_web_without_a_value_serves_on_the_default_address() -> None:
    from app.cli import build_parser
    from app.web.bind import Bind

    args = build_parser().parse_args(["run", "folder:/a", "folder:/b", "--web"])
    assert args.web == Bind("127.0.0.1", 8390)
    assert build_parser().parse_args(["run", "folder:/a", "folder:/b"]).web is None
