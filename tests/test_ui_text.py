"""What the tray and the status window say, and the add-location form's rules (no display)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.status import Activity, EngineStatus, LocationState, LocationStatus
from app.ui.form import FormError, LocationForm, build_spec
from app.ui.summary import (
    TrayState,
    activity_line,
    location_line,
    notification,
    short_name,
    tooltip,
    tray_state,
)


def row(name: str, state: LocationState = LocationState.OK, **kw: object) -> LocationStatus:
    kind = name.split(":", maxsplit=1)[0]
    return LocationStatus(key=name, name=name, kind=kind, state=state, **kw)  # type: ignore[arg-type]


def test_synced_tooltip_names_the_count_and_time() -> None:
    status = EngineStatus(
        locations=(row("folder:/a"), row("zip:/b.zip"), row("ftp://h:21/x")), last_sync=0.0
    )
    assert tray_state(status) is TrayState.SYNCED
    assert tooltip(status).startswith("Synced · 3 locations · ")


def test_syncing_counts_pending_files() -> None:
    status = EngineStatus(locations=(row("folder:/a"),), syncing=True, pending=12)
    assert tray_state(status) is TrayState.SYNCING
    assert tooltip(status) == "Syncing 12 files"


def test_unavailable_location_is_an_error_that_is_retried() -> None:
    status = EngineStatus(
        locations=(
            row("folder:/a"),
            row("ftps://me@backup.example.org:21/backup", LocationState.UNAVAILABLE),
        )
    )
    assert tray_state(status) is TrayState.ERROR
    assert tooltip(status) == "backup.example.org/backup unavailable — retrying"


def test_paused_wins_over_everything() -> None:
    status = EngineStatus(locations=(row("folder:/a", LocationState.ERROR),), paused=True)
    assert tray_state(status) is TrayState.PAUSED
    assert tooltip(status) == "Paused · 1 location"


def test_no_locations_invites_to_add_one() -> None:
    assert tray_state(EngineStatus()) is TrayState.SYNCED
    assert "add one" in tooltip(EngineStatus())


def test_error_text_drops_the_repeated_location_name() -> None:
    status = EngineStatus(
        locations=(
            row("folder:/x/usb", LocationState.ERROR, last_error="folder:/x/usb: disk full"),
        )
    )
    assert tooltip(status) == "usb: disk full"
    assert location_line(status.locations[0]) == "usb — error"


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("folder:/home/me/Documents", "Documents"),
        ("zip:/home/me/photos.zip", "photos.zip"),
        ("ftps://me@ftp.example.org:2121/backup", "ftp.example.org/backup"),
        ("ftp://h:21/", "h"),
    ],
)
def test_short_names(name: str, short: str) -> None:
    assert short_name(name) == short


def test_conflicts_and_errors_are_notified_copies_are_not() -> None:
    conflict = Activity(0.0, "conflict", "a.txt", "folder:/x/laptop", "kept both")
    assert notification(conflict) == ("FileSync: conflict", "a.txt in laptop (kept both)")
    error = Activity(0.0, "error", "b.txt", "zip:/x/a.zip", "zip:/x/a.zip: disk full")
    assert notification(error) == ("FileSync: error", "a.zip: b.txt — disk full")
    assert notification(Activity(0.0, "copied", "c.txt", "folder:/y")) is None
    assert "copied" in activity_line(
        Activity(0.0, "copied", "c.txt", "folder:/y", "from folder:/z")
    )


def test_folder_form_needs_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(FormError) as err:
        build_spec(LocationForm(kind="folder", path=""))
    assert "path" in err.value.fields
    with pytest.raises(FormError, match="does not exist"):
        build_spec(LocationForm(kind="folder", path=str(tmp_path / "nope")))
    (tmp_path / "file").write_text("x")
    with pytest.raises(FormError, match="not a folder"):
        build_spec(LocationForm(kind="folder", path=str(tmp_path / "file")))
    with pytest.raises(FormError, match="full path"):
        build_spec(LocationForm(kind="folder", path="relative/dir"))
    assert build_spec(LocationForm(kind="folder", path=str(tmp_path))).key == f"folder:{tmp_path}"


def test_zip_form_accepts_a_new_archive_in_an_existing_folder(tmp_path: Path) -> None:
    assert build_spec(LocationForm(kind="zip", path=str(tmp_path / "new.zip"))).kind == "zip"
    with pytest.raises(FormError, match=r"ends in \.zip"):
        build_spec(LocationForm(kind="zip", path=str(tmp_path / "new.tar")))
    with pytest.raises(FormError, match="does not exist"):
        build_spec(LocationForm(kind="zip", path=str(tmp_path / "no" / "a.zip")))


def test_ftp_form_explains_each_field() -> None:
    with pytest.raises(FormError) as err:
        build_spec(LocationForm(kind="ftp", host="", port="x", remote_path="/a/../b"))
    assert set(err.value.fields) == {"host", "port", "remote_path"}
    with pytest.raises(FormError, match="only the server's name"):
        build_spec(LocationForm(kind="ftp", host="ftp://h"))
    with pytest.raises(FormError, match="between 1 and 65535"):
        build_spec(LocationForm(kind="ftp", host="h", port="70000"))
    spec = build_spec(
        LocationForm(kind="ftp", host="h", port="2121", user="me", password="p:w@", tls=True)
    )
    assert (spec.host, spec.port, spec.user, spec.password, spec.tls) == (
        "h",
        2121,
        "me",
        "p:w@",
        True,
    )
    assert "p:w@" not in spec.redacted


def test_a_location_cannot_be_added_twice(tmp_path: Path) -> None:
    with pytest.raises(FormError, match="already synced"):
        build_spec(
            LocationForm(kind="folder", path=str(tmp_path)), frozenset({f"folder:{tmp_path}"})
        )
