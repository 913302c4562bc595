"""The dashboard's numbered activity log and the words it shows, without a server."""

from __future__ import annotations

from app.engine.status import Activity, EngineStatus, LocationState, LocationStatus
from app.locations.registry import parse_spec
from app.web.feed import ActivityFeed
from app.web.guard import AllowedHosts, host_name
from app.web.views import status_json


def test_records_are_numbered_and_a_number_from_before_a_restart_gives_everything() -> None:
    feed = ActivityFeed(keep=3)
    assert feed.since(0) == []
    for n in range(5):
        feed.add(Activity(float(n), "copied", f"f{n}", "folder:/x"))
    assert feed.last == 5
    assert [r.seq for r in feed.since(0)] == [3, 4, 5]  # only the newest 3 are kept
    assert [r.seq for r in feed.since(4)] == [5]
    assert feed.since(5) == []
    assert [r.seq for r in feed.since(99)] == [3, 4, 5]
    assert feed.since(4)[0].as_json() == {
        "seq": 5,
        "time": 4.0,
        "action": "copied",
        "path": "f4",
        "location": "folder:/x",
        "detail": "",
    }


def test_status_masks_passwords_and_paused_locations_say_paused() -> None:
    spec = parse_spec("ftp://bob:s3cret@example.org/data")
    rows = (
        LocationStatus(spec.key, spec.redacted, "ftp", LocationState.OK),
        LocationStatus("k2", "folder:/a", "folder", LocationState.UNAVAILABLE, last_error="gone"),
    )
    data = status_json(EngineStatus(locations=rows, paused=True), (spec,))
    assert "s3cret" not in str(data)
    assert data["locations"][0]["spec"] == "ftp://bob:***@example.org/data"
    assert data["locations"][0]["state"] == "paused"
    assert data["locations"][1]["state"] == "unavailable"
    assert "retries by itself" in data["locations"][1]["advice"]


def test_host_names() -> None:
    assert host_name("127.0.0.1:8390") == "127.0.0.1"
    assert host_name("[::1]:8390") == "::1"
    assert host_name("LocalHost") == "localhost"
    loopback = AllowedHosts("127.0.0.1")
    assert loopback.allows("localhost:1") and not loopback.allows("192.168.1.5:8390")
    everywhere = AllowedHosts("0.0.0.0")
    assert everywhere.allows("192.168.1.5:8390")
    assert not everywhere.allows("attacker.example:8390")
