"""The status window and the add-location dialog, clicked and typed into with xdotool on a
real X server, driving the real engine on real folders, a ZIP archive and an FTP server."""

from __future__ import annotations

import logging
import stat
import tkinter as tk
import zipfile
from pathlib import Path

import pytest

from app.config import Config, load_config
from app.locations.registry import parse_spec
from app.ui.commands import Action
from tests.ftp_server import PASSWORD, USER, ThreadedFtpServer
from tests.gui.conftest import GTK_DEPRECATIONS, Desktop, Harness
from tests.gui.xserver import screenshot
from tests.helpers import write_file

pytestmark = [pytest.mark.gui, *GTK_DEPRECATIONS]


def click(desktop: Desktop, harness: Harness, widget: tk.Misc) -> None:
    """Click the middle of a widget with the real mouse pointer."""
    harness.pump()
    x = widget.winfo_rootx() + widget.winfo_width() // 2
    y = widget.winfo_rooty() + widget.winfo_height() // 2
    desktop.x("xdotool", "mousemove", str(x), str(y), "click", "1")
    harness.pump()


def type_into(desktop: Desktop, harness: Harness, entry: tk.Misc, text: str) -> None:
    """Focus an entry by clicking it, select what is there, and type ``text``."""
    click(desktop, harness, entry)
    harness.wait(lambda: entry.focus_get() is entry, "the entry to get the focus")
    old = len(entry.get())  # type: ignore[attr-defined]
    if old:
        desktop.x("xdotool", "key", "End")
        desktop.x("xdotool", "key", "--repeat", str(old), "--delay", "2", "BackSpace")
    desktop.x("xdotool", "type", "--delay", "5", text)
    harness.wait(lambda: entry.get() == text, f"{text!r} to be typed")  # type: ignore[attr-defined]


def frame_id(window: tk.Misc) -> str:
    """The X id of a Toplevel's outer window, for screenshots."""
    return str(window.wm_frame())  # type: ignore[attr-defined]


def zip_names(archive: Path) -> list[str]:
    if not archive.exists():
        return []
    with zipfile.ZipFile(archive) as zf:
        return zf.namelist()


def engine_keys(harness: Harness) -> set[str]:
    return {loc.key for loc in harness.app.facade.status().locations}


def test_status_window_shows_each_location_and_drives_the_engine(
    start_app, desktop: Desktop, tmp_path: Path, screenshots: Path
) -> None:
    a, b, c = (tmp_path / n for n in ("documents", "backup", "usb-stick"))
    for folder in (a, b, c):
        folder.mkdir()
    write_file(a / "report.txt", "report")
    specs = tuple(parse_spec(f"folder:{p}") for p in (a, b, c))
    harness = start_app("xorg", Config(locations=specs))
    harness.app.commands.post(Action.SHOW_STATUS)
    window = harness.app.status_window
    harness.wait(lambda: window.visible, "the status window")
    harness.wait((c / "report.txt").exists, "the initial sync")
    harness.wait(lambda: window.row(specs[1].key)["state"] == "synced", "the backup row")
    assert window.row(specs[1].key)["last_sync"] != "never"
    assert window.row(specs[1].key)["pending"] == "0"

    click(desktop, harness, window.buttons[Action.TOGGLE_PAUSE])
    harness.wait(lambda: harness.app.facade.status().paused, "Pause from the window")
    harness.wait(lambda: window.buttons[Action.TOGGLE_PAUSE].cget("text") == "Resume", "Resume")
    write_file(a / "notes.txt", "while paused")
    click(desktop, harness, window.buttons[Action.TOGGLE_PAUSE])
    harness.wait((b / "notes.txt").exists, "the file written while paused")

    write_file(a / "later.txt", "z")
    click(desktop, harness, window.buttons[Action.SYNC_NOW])
    harness.wait((b / "later.txt").exists, "Sync now from the window")
    harness.wait(lambda: window.activity.size() > 0, "recent activity")
    assert any("copied" in window.activity.get(i) for i in range(window.activity.size()))

    c.rename(tmp_path / "unplugged")
    click(desktop, harness, window.buttons[Action.SYNC_NOW])
    harness.wait(lambda: window.row(specs[2].key)["state"] in ("unavailable", "error"), "error row")
    assert window.row(specs[2].key)["error"] != "—"
    screenshot(desktop.display, screenshots / "status-window.png", window=frame_id(window.window))

    window.tree.selection_set(specs[2].key)
    click(desktop, harness, window.remove_button)
    harness.wait(lambda: specs[2].key not in engine_keys(harness), "the removed location")
    assert [s.key for s in load_config().locations] == [specs[0].key, specs[1].key]

    harness.wait(lambda: not window.tree.exists(specs[2].key), "the row to go")
    window.tree.selection_set(specs[1].key)
    click(desktop, harness, window.open_button)
    harness.wait(lambda: harness.opened == [str(b)], "Open to show the folder")


def test_dialog_opens_by_itself_adds_a_folder_and_a_zip_that_sync_and_rejects_bad_input(
    start_app, desktop: Desktop, tmp_path: Path, screenshots: Path
) -> None:
    a, b = tmp_path / "photos", tmp_path / "photos-copy"
    a.mkdir()
    b.mkdir()
    write_file(a / "cat.jpg", b"\xff\xd8 not really a jpeg")
    archive = tmp_path / "photos.zip"
    harness = start_app("xorg")
    dialog = harness.app.dialog
    assert dialog is not None, "with no locations the dialog opens by itself"
    harness.wait(dialog.window.winfo_ismapped, "the dialog")

    type_into(desktop, harness, dialog.entries["path"], str(tmp_path / "missing"))
    click(desktop, harness, dialog.ok_button)
    assert dialog.error_text("path") == "this folder does not exist; create it first"
    assert not dialog.closed
    screenshot(desktop.display, screenshots / "dialog.png", window=frame_id(dialog.window))

    type_into(desktop, harness, dialog.entries["path"], str(a))
    click(desktop, harness, dialog.ok_button)
    assert dialog.closed
    harness.wait(lambda: engine_keys(harness) == {f"folder:{a}"}, "the first folder")

    first = dialog
    harness.app.commands.post(Action.ADD_LOCATION)
    harness.wait(lambda: harness.app.dialog is not first, "a new dialog")
    dialog = harness.app.dialog
    assert dialog is not None
    type_into(desktop, harness, dialog.entries["path"], str(b))
    click(desktop, harness, dialog.ok_button)
    assert dialog.closed

    second = dialog
    harness.app.commands.post(Action.ADD_LOCATION)
    harness.wait(lambda: harness.app.dialog is not second, "a new dialog")
    dialog = harness.app.dialog
    assert dialog is not None
    click(desktop, harness, dialog.window.nametowidget("!frame.!frame.kind_zip"))
    assert dialog.kind.get() == "zip"
    type_into(desktop, harness, dialog.entries["path"], str(tmp_path / "photos.tar"))
    click(desktop, harness, dialog.ok_button)
    assert dialog.error_text("path") == "a ZIP archive's name ends in .zip"
    type_into(desktop, harness, dialog.entries["path"], str(a))
    click(desktop, harness, dialog.ok_button)
    assert "ends in .zip" in dialog.error_text("path")
    type_into(desktop, harness, dialog.entries["path"], str(a / "inside.zip"))
    click(desktop, harness, dialog.ok_button)
    assert "the archive would contain itself" in dialog.error_text("path")
    type_into(desktop, harness, dialog.entries["path"], str(archive))
    click(desktop, harness, dialog.ok_button)
    assert dialog.closed, dialog.error_text("path")

    harness.wait((b / "cat.jpg").exists, "the folder added without a restart to sync")
    harness.wait(lambda: "cat.jpg" in zip_names(archive), "the ZIP archive to receive the file")
    write_file(a / "dog.jpg", b"woof")
    harness.wait((b / "dog.jpg").exists, "a later change to sync")
    saved = load_config()
    assert [s.key for s in saved.locations] == [f"folder:{a}", f"folder:{b}", f"zip:{archive}"]
    config_file = tmp_path / "home" / "config" / "filesync.toml"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600


def test_ftp_test_connection_reports_inline_and_ok_adds_the_server(
    start_app,
    desktop: Desktop,
    tmp_path: Path,
    ftp_server: ThreadedFtpServer,
    screenshots: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    a = tmp_path / "work"
    a.mkdir()
    write_file(a / "plan.txt", "plan")
    harness = start_app("xorg", Config(locations=(parse_spec(f"folder:{a}"),)))
    harness.app.commands.post(Action.ADD_LOCATION)
    harness.wait(lambda: harness.app.dialog is not None, "the dialog")
    dialog = harness.app.dialog
    assert dialog is not None
    click(desktop, harness, dialog.window.nametowidget("!frame.!frame.kind_ftp"))
    harness.wait(dialog.entries["host"].winfo_ismapped, "the FTP fields")

    click(desktop, harness, dialog.test_button)
    assert dialog.error_text("host").startswith("enter the server's name")
    type_into(desktop, harness, dialog.entries["host"], "127.0.0.1")
    type_into(desktop, harness, dialog.entries["port"], "port")
    click(desktop, harness, dialog.test_button)
    assert dialog.error_text("port") == "a whole number between 1 and 65535, usually 21"
    type_into(desktop, harness, dialog.entries["port"], str(ftp_server.port))
    type_into(desktop, harness, dialog.entries["user"], USER)
    type_into(desktop, harness, dialog.entries["password"], "wrong")
    assert dialog.entries["password"].cget("show") == "•"
    click(desktop, harness, dialog.test_button)
    harness.wait(lambda: not dialog.testing, "the failed test", timeout=60)
    assert str(dialog.test_result.cget("foreground")) == "#b3261e"
    assert dialog.test_result.cget("text")

    type_into(desktop, harness, dialog.entries["password"], PASSWORD)
    click(desktop, harness, dialog.test_button)
    harness.wait(lambda: not dialog.testing, "the test", timeout=60)
    assert dialog.test_result.cget("text") == "Connected: 0 files found"
    screenshot(desktop.display, screenshots / "dialog-ftp.png", window=frame_id(dialog.window))

    click(desktop, harness, dialog.ok_button)
    assert dialog.closed
    harness.wait((ftp_server.root / "plan.txt").exists, "the file on the FTP server")
    assert PASSWORD not in caplog.text, "a password must never be logged"


def test_without_a_usable_tray_the_status_window_is_the_app(
    start_app, desktop: Desktop, tmp_path: Path
) -> None:
    a = tmp_path / "a"
    a.mkdir()
    harness = start_app("win32", Config(locations=(parse_spec(f"folder:{a}"),)))
    assert harness.app.tray is None
    window = harness.app.status_window
    harness.wait(lambda: window.visible, "the status window in place of the tray")
    # What the window manager's close button runs:
    window.window.tk.call(window.window.protocol("WM_DELETE_WINDOW"))
    assert harness.app.quitting


def test_dashboard_button_opens_the_logged_in_page_and_the_page_adds_through_the_app(
    start_app, desktop: Desktop, tmp_path: Path, home: Path
) -> None:
    from tests.web_fixtures import Client

    a, b, c = (tmp_path / n for n in ("a", "b", "c"))
    for folder in (a, b, c):
        folder.mkdir()
    specs = tuple(parse_spec(f"folder:{p}") for p in (a, b))
    harness = start_app("xorg", Config(locations=specs))
    assert harness.app.dashboard is not None
    harness.app.commands.post(Action.SHOW_STATUS)
    window = harness.app.status_window
    harness.wait(lambda: window.visible, "the status window")
    click(desktop, harness, window.buttons[Action.OPEN_DASHBOARD])
    harness.wait(lambda: harness.opened, "the browser to be asked")
    url = harness.opened[-1]
    base, token = url.split("?token=")
    assert base == harness.app.dashboard.url

    browser = Client(base)
    assert browser.login(token).status == 303
    harness.wait(lambda: len(browser.get("/api/status").json()["locations"]) == 2, "2 rows")
    added = browser.post(
        "/api/locations",
        {"kind": "folder", "path": str(c)},
        headers={"X-CSRF-Token": browser.csrf()},
    )
    assert added.status == 201, added.text
    harness.wait(lambda: parse_spec(f"folder:{c}") in load_config().locations, "saved settings")
    harness.wait(lambda: len(engine_keys(harness)) == 3, "the engine syncing c")
    log_text = (home / "log" / "filesync.log").read_text() if (home / "log").exists() else ""
    assert token not in log_text
