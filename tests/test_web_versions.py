"""The trash and conflict calls of the API, end to end over a real engine syncing two folders,
a ZIP and an FTP server: what is listed, and that a restored or kept version ends up in every
location."""

from __future__ import annotations

import time

from tests.helpers import tree, wait_until, write_file
from tests.test_zip_helpers import zip_tree
from tests.web_fixtures import Client, Dashboard


def everywhere(dashboard: Dashboard) -> list[dict[str, bytes]]:
    """Every location's files: a, b, the ZIP, the FTP server's folder."""
    return [
        tree(dashboard.a),
        tree(dashboard.b),
        zip_tree(dashboard.archive),
        tree(dashboard.ftp.root),
    ]


def in_every_location(dashboard: Dashboard, path: str, data: bytes) -> bool:
    return all(files.get(path) == data for files in everywhere(dashboard))


def gone_everywhere(dashboard: Dashboard, path: str) -> bool:
    return all(path not in files for files in everywhere(dashboard))


def test_a_deleted_file_is_listed_in_the_trash_and_restored_in_every_location(
    dashboard: Dashboard,
) -> None:
    client = dashboard.client()
    wait_until(lambda: in_every_location(dashboard, "hello.txt", b"hello"), message="synced")
    # Deleted in b (an engine's copy): a's own version, deleted by the engine, is kept.
    (dashboard.b / "hello.txt").unlink()
    wait_until(lambda: gone_everywhere(dashboard, "hello.txt"), message="the delete synced")

    trash = client.get("/api/trash").json()
    deleted = [i for i in trash["items"] if i["path"] == "hello.txt" and i["reason"] == "deleted"]
    assert deleted, trash
    item = deleted[0]
    assert item["location"] == dashboard.key(0)  # only folders keep versions
    assert item["size"] == 5
    assert item["trashed_at"] <= time.time()
    assert set(item) >= {"id", "location", "path", "size", "mtime", "trashed_at", "reason"}

    restored = client.post("/api/trash/restore", {"id": item["id"]})
    assert restored.status == 200, restored.text
    assert restored.json()["path"] == "hello.txt"
    wait_until(
        lambda: in_every_location(dashboard, "hello.txt", b"hello"),
        message=lambda: f"hello.txt back everywhere: {everywhere(dashboard)}",
    )
    assert client.post("/api/trash/restore", {"id": "no-such-id"}).status == 404
    assert client.post("/api/trash/restore", {}).status == 400


def test_trash_pages_filters_and_says_why(dashboard: Dashboard) -> None:
    client = dashboard.client()
    for n in range(3):
        write_file(dashboard.a / f"doc{n}.txt", f"first {n}")
    wait_until(lambda: in_every_location(dashboard, "doc2.txt", b"first 2"), message="synced")
    for n in range(3):
        write_file(dashboard.b / f"doc{n}.txt", f"second {n}!")
    wait_until(lambda: in_every_location(dashboard, "doc2.txt", b"second 2!"), message="edits")

    everything = client.get(f"/api/trash?location={dashboard.key(0)}").json()
    overwritten = {i["path"] for i in everything["items"] if i["reason"] == "overwritten"}
    assert overwritten >= {"doc0.txt", "doc1.txt", "doc2.txt"}
    assert everything["total"] == len(everything["items"])

    first = client.get(f"/api/trash?location={dashboard.key(0)}&limit=2").json()
    rest = client.get(f"/api/trash?location={dashboard.key(0)}&limit=2&offset=2").json()
    assert len(first["items"]) == 2
    assert first["total"] == everything["total"]
    ids = [i["id"] for i in first["items"] + rest["items"]]
    assert ids == [i["id"] for i in everything["items"]][: len(ids)]

    future = client.get(f"/api/trash?since={time.time() + 3600}").json()
    assert future == {"items": [], "total": 0, "offset": 0, "limit": 100}
    assert client.get("/api/trash?limit=0").status == 400
    assert client.get("/api/trash?since=yesterday").status == 400


def test_undo_the_last_minutes_restores_every_deleted_file_everywhere(
    dashboard: Dashboard,
) -> None:
    client = dashboard.client()
    for name in ("one.txt", "sub/two.txt"):
        write_file(dashboard.a / name, name)
    wait_until(lambda: in_every_location(dashboard, "sub/two.txt", b"sub/two.txt"), message="sync")
    start = time.time() - 1
    for name in ("one.txt", "sub/two.txt"):
        (dashboard.b / name).unlink()
    wait_until(lambda: gone_everywhere(dashboard, "sub/two.txt"), message="the deletes")
    wait_until(lambda: gone_everywhere(dashboard, "one.txt"), message="the deletes")

    reply = client.post("/api/trash/restore-window", {"since": start})
    assert reply.status == 200, reply.text
    assert sorted(r["path"] for r in reply.json()["items"]) == ["one.txt", "sub/two.txt"]
    for name in ("one.txt", "sub/two.txt"):
        wait_until(
            lambda name=name: in_every_location(dashboard, name, name.encode()),
            message=f"{name} back everywhere",
        )
    assert client.post("/api/trash/restore-window", {"since": "then"}).status == 400


def make_conflict(dashboard: Dashboard, client: Client) -> None:
    """hello.txt changed in a and in b while paused: a's newer edit wins, b's is the copy."""
    wait_until(lambda: in_every_location(dashboard, "hello.txt", b"hello"), message="synced")
    client.post("/api/pause")
    now = time.time()
    write_file(dashboard.b / "hello.txt", "b's edit", mtime=now - 60)
    write_file(dashboard.a / "hello.txt", "a's edit", mtime=now)
    client.post("/api/resume")
    # Until every location holds both, one may list the copy while the winner is still on its
    # way there (the loser is renamed aside first).
    wait_until(
        lambda: all(
            files.get("hello.txt") == b"a's edit"
            and [files[p] for p in conflict_copies(files)] == [b"b's edit"]
            for files in everywhere(dashboard)
        ),
        message=lambda: f"the conflict settled everywhere: {everywhere(dashboard)}",
    )


def conflict_copies(files: dict[str, bytes]) -> list[str]:
    return [p for p in files if "conflict" in p]


def test_a_conflict_is_listed_with_both_versions_and_keeping_the_copy_wins_everywhere(
    dashboard: Dashboard,
) -> None:
    client = dashboard.client()
    make_conflict(dashboard, client)
    wait_until(lambda: client.get("/api/conflicts").json()["items"], message="the conflict")
    items = client.get("/api/conflicts").json()["items"]
    assert len(items) == 1, items
    item = items[0]
    assert item["path"] == "hello.txt"
    assert item["size"] == len(b"b's edit")
    assert item["current_size"] == len(b"a's edit")
    assert item["current_mtime"] > item["mtime"]
    wait_until(
        lambda: all(files.get(item["copy"]) == b"b's edit" for files in everywhere(dashboard)),
        message="the conflict copy everywhere",
    )

    assert client.post("/api/conflicts/resolve", {"id": item["id"], "keep": "both"}).status == 400
    reply = client.post("/api/conflicts/resolve", {"id": item["id"], "keep": "copy"})
    assert reply.status == 200, reply.text
    wait_until(
        lambda: (
            in_every_location(dashboard, "hello.txt", b"b's edit")
            and not any(conflict_copies(f) for f in everywhere(dashboard))
        ),
        message=lambda: f"the copy kept everywhere: {everywhere(dashboard)}",
    )
    assert client.get("/api/conflicts").json()["items"] == []
    replaced = client.get("/api/trash").json()["items"]
    assert any(i["path"] == "hello.txt" and i["size"] == len(b"a's edit") for i in replaced)
    assert client.post("/api/conflicts/resolve", {"id": item["id"], "keep": "copy"}).status == 404


def test_keeping_the_current_version_removes_the_copy_everywhere(dashboard: Dashboard) -> None:
    client = dashboard.client()
    make_conflict(dashboard, client)
    wait_until(lambda: client.get("/api/conflicts").json()["items"], message="the conflict")
    item = client.get("/api/conflicts").json()["items"][0]
    reply = client.post("/api/conflicts/resolve", {"id": item["id"], "keep": "current"})
    assert reply.status == 200, reply.text
    wait_until(
        lambda: (
            in_every_location(dashboard, "hello.txt", b"a's edit")
            and not any(conflict_copies(f) for f in everywhere(dashboard))
        ),
        message=lambda: f"the copy gone everywhere: {everywhere(dashboard)}",
    )


def test_trash_and_conflict_changes_from_a_browser_need_the_csrf_token(
    dashboard: Dashboard,
) -> None:
    browser = Client(dashboard.server.url)
    browser.login(dashboard.token)
    assert browser.get("/api/trash").status == 200
    assert browser.get("/api/conflicts").status == 200
    for path, body in (
        ("/api/trash/restore", {"id": "x"}),
        ("/api/trash/restore-window", {"since": 0}),
        ("/api/conflicts/resolve", {"id": "x", "keep": "copy"}),
    ):
        assert browser.post(path, body).status == 403, path
        assert dashboard.client(None).post(path, body).status == 401, path
