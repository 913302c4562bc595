"""The dashboard's JSON API over a real engine syncing two folders, a ZIP and an FTP server.

Who may call it (token, Host, CSRF) and what it says and does.
"""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import pytest

from tests import probe_kind
from tests.ftp_server import PASSWORD
from tests.helpers import tree, wait_until, write_file
from tests.web_fixtures import Client, Dashboard


def test_api_answers_only_with_the_token_and_says_nothing_without(dashboard: Dashboard) -> None:
    for client in (dashboard.client(None), dashboard.client("wrong-token-wrong-token")):
        reply = client.get("/api/status")
        assert reply.status == 401
        assert reply.json() == {"error": "unauthorized"}
        assert client.post("/api/pause").status == 401
    assert not dashboard.engine.status().paused
    assert dashboard.client().get("/api/status").status == 200


def test_a_foreign_host_header_is_refused_even_with_the_token(dashboard: Dashboard) -> None:
    client = dashboard.client()
    for host in ("evil.example", f"evil.example:{client.port}", "127.0.0.1.nip.io"):
        reply = client.get("/api/status", headers={"Host": host})
        assert reply.status == 403, host
        assert b"folder" not in reply.body
    for host in (f"localhost:{client.port}", f"127.0.0.1:{client.port}", "localhost"):
        assert client.get("/api/status", headers={"Host": host}).status == 200, host


def test_login_link_sets_a_strict_http_only_cookie_and_drops_the_token(
    dashboard: Dashboard,
) -> None:
    browser = Client(dashboard.server.url)
    assert browser.get("/").status == 401  # the page itself needs the session too
    refused = browser.login("not-the-token-at-all")
    assert refused.status == 403
    assert not refused.headers.get_all("set-cookie")

    reply = browser.login(dashboard.token)
    assert reply.status == 303
    assert reply.headers["location"] == "/"
    cookies = reply.headers.get_all("set-cookie") or []
    session = next(c for c in cookies if c.startswith("filesync-session-"))
    assert "HttpOnly" in session
    assert "samesite=strict" in session.lower()
    assert all(dashboard.token not in c for c in cookies)
    assert browser.get("/").status == 200
    assert browser.get("/api/status").json()["locations"]


def test_cookie_authenticated_changes_need_the_csrf_token(dashboard: Dashboard) -> None:
    browser = Client(dashboard.server.url)
    browser.login(dashboard.token)
    assert browser.post("/api/pause").status == 403
    assert browser.post("/api/pause", headers={"X-CSRF-Token": "guess"}).status == 403
    assert not dashboard.engine.status().paused
    reply = browser.post("/api/pause", headers={"X-CSRF-Token": browser.csrf()})
    assert reply.status == 200
    assert reply.json()["paused"] is True
    assert dashboard.engine.status().paused


def test_status_lists_every_location_with_its_password_masked(dashboard: Dashboard) -> None:
    status = dashboard.client().get("/api/status").json()
    assert status["paused"] is False
    rows = {row["key"]: row for row in status["locations"]}
    assert set(rows) == {dashboard.key(i) for i in range(4)}
    assert {row["kind"] for row in rows.values()} == {"folder", "zip", "ftp"}
    for row in rows.values():
        assert row["state"] == "synced"
        assert row["last_sync"] > 0
        assert set(row) >= {"key", "name", "spec", "kind", "state", "pending", "last_sync"}
        assert "last_error" in row
    ftp = rows[dashboard.key(3)]
    assert ":***@" in ftp["spec"]
    assert PASSWORD not in json.dumps(status)


def test_activity_since_n_and_the_live_stream(dashboard: Dashboard) -> None:
    client = dashboard.client()
    first = client.get("/api/activity?since=0").json()
    assert any(i["path"] == "hello.txt" and i["action"] == "copied" for i in first["items"])
    last = first["last"]
    assert client.get(f"/api/activity?since={last}").json()["items"] == []

    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=30)
    try:
        conn.request(
            "GET",
            f"/api/activity/stream?since={last}",
            headers={"Host": f"127.0.0.1:{client.port}", "Authorization": f"Bearer {client.token}"},
        )
        response = conn.getresponse()
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        write_file(dashboard.a / "live.txt", "live")
        seen = b""
        deadline = time.monotonic() + 60
        while b'"path": "live.txt"' not in seen:
            assert time.monotonic() < deadline, seen[-500:]
            seen += response.fp.readline()  # type: ignore[union-attr]
        assert b"event: activity" in seen
        assert b"event: status" in seen
    finally:
        conn.close()
    later = client.get(f"/api/activity?since={last}").json()["items"]
    assert any(i["path"] == "live.txt" for i in later)
    assert all(i["seq"] > last for i in later)


def test_pause_resume_and_sync_now(dashboard: Dashboard) -> None:
    client = dashboard.client()
    assert client.post("/api/pause").json()["paused"] is True
    states = {r["state"] for r in client.get("/api/status").json()["locations"]}
    assert states == {"paused"}
    write_file(dashboard.a / "while-paused.txt", "p")
    # The engine has seen it (it is pending) and has handled everything queued: paused, it
    # kept the path for later instead of copying it.
    wait_until(lambda: client.get("/api/status").json()["pending"] >= 1, message="pending")
    assert dashboard.engine.wait_idle()
    assert "while-paused.txt" not in tree(dashboard.b)
    assert client.get("/api/status").json()["pending"] >= 1
    assert client.post("/api/resume").json()["paused"] is False
    wait_until(lambda: "while-paused.txt" in tree(dashboard.b), message="sync after resume")
    assert client.post("/api/sync").status == 200
    assert client.get("/api/pause").status == 405


def test_add_and_remove_a_location_with_the_dialogs_rules(
    dashboard: Dashboard, tmp_path: Path
) -> None:
    client = dashboard.client()
    missing = client.post("/api/locations", {"kind": "folder", "path": str(tmp_path / "nope")})
    assert missing.status == 400
    assert missing.json()["fields"] == {"path": "this folder does not exist; create it first"}
    relative = client.post("/api/locations", {"kind": "folder", "path": "c"})
    assert "full path" in relative.json()["fields"]["path"]
    inside = client.post("/api/locations", {"kind": "folder", "path": str(dashboard.a / "sub")})
    assert inside.status == 400
    assert client.post("/api/locations", {"kind": "folder", "path": str(dashboard.a)}).json()[
        "fields"
    ] == {"path": "this location is already synced"}
    assert client.post("/api/locations", {"colour": "red"}).status == 400

    c = tmp_path / "c"
    c.mkdir()
    added = client.post("/api/locations", {"kind": "folder", "path": str(c)})
    assert added.status == 201, added.text
    key = added.json()["key"]
    wait_until(lambda: tree(c).get("hello.txt") == b"hello", message="initial sync of c")
    assert key in {r["key"] for r in client.get("/api/status").json()["locations"]}

    removed = client.call("DELETE", f"/api/locations/{key}")
    assert removed.status == 200
    wait_until(
        lambda: key not in {r["key"] for r in client.get("/api/status").json()["locations"]},
        message="location removed",
    )
    assert tree(c).get("hello.txt") == b"hello"  # its files stay
    assert client.call("DELETE", f"/api/locations/{key}").status == 404


def test_stopping_the_server_ends_an_open_stream_at_once(dashboard: Dashboard) -> None:
    client = dashboard.client()
    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=30)
    try:
        conn.request(
            "GET",
            "/api/activity/stream",
            headers={"Host": f"127.0.0.1:{client.port}", "Authorization": f"Bearer {client.token}"},
        )
        response = conn.getresponse()
        assert response.readline().startswith(b"retry:")
        started = time.monotonic()
        dashboard.server.stop()
        assert time.monotonic() - started < 8
        response.read()  # the stream has ended: this returns instead of waiting
    finally:
        conn.close()
    assert not (dashboard.state / "dashboard.json").exists()


def test_the_add_form_offers_each_kinds_declared_fields_and_takes_their_values(
    dashboard: Dashboard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe_kind.register(monkeypatch)
    client = dashboard.client()
    kinds = {k["name"]: k for k in client.get("/api/kinds").json()["kinds"]}
    fields = {f["name"]: f for f in kinds["probe"]["fields"]}
    assert [f["name"] for f in kinds["probe"]["fields"]] == [f.name for f in probe_kind.FIELDS]
    assert fields["verbose"] == {
        "name": "verbose",
        "label": "Talk a lot",
        "widget": "checkbox",
        "default": False,
        "required": False,
        "help": "",
        "choices": [],
        "suffix": "",
    }
    assert fields["mode"]["choices"] == ["fast", "careful"]
    assert [f["widget"] for f in kinds["ftp"]["fields"]][-1] == "checkbox"
    refused = client.post("/api/locations", {"kind": "probe", "root": str(tmp_path), "x": "1"})
    assert refused.status == 400
    assert "unknown field 'x'" in refused.json()["error"]
    missing = client.post("/api/locations", {"kind": "probe", "root": str(tmp_path)})
    assert missing.json()["fields"] == {"nickname": "required"}
