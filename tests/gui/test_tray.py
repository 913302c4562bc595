"""The tray icon under a real tray host: it docks, its picture follows the engine's state,
a click (plain X backend) opens the status window, the GTK menu drives the real engine, and
Start at login / Quit do what they say."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from app.config import Config, load_config
from app.engine.index import StateIndex
from app.locations.registry import parse_spec
from app.ui.commands import Action
from app.ui.summary import TrayState
from tests.gui.conftest import GTK_DEPRECATIONS, Desktop, Harness
from tests.gui.xserver import screenshot, shown_tray_icons, stop, tray_icons
from tests.helpers import wait_until, write_file

pytestmark = [pytest.mark.gui, *GTK_DEPRECATIONS]

#: The dominant colour of each picture (resources/make_icons.py).
COLOURS = {
    TrayState.SYNCED: (46, 160, 67),
    TrayState.SYNCING: (33, 118, 214),
    TrayState.PAUSED: (128, 128, 128),
    TrayState.ERROR: (208, 50, 45),
}


def two_folders(tmp_path: Path) -> tuple[Config, Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    config = Config(locations=(parse_spec(f"folder:{a}"), parse_spec(f"folder:{b}")))
    return config, a, b


def docked_icon(desktop: Desktop, harness: Harness) -> str:
    """Wait until this app's icon is docked in trayer's panel and shown; return its window id."""
    found: dict[str, str] = {}

    def docked() -> bool:
        shown = shown_tray_icons(desktop.display).items()
        found.update((w, name) for w, name in shown if w not in harness.stale_icons)
        return bool(found)

    harness.wait(
        docked,
        lambda: "the icon to dock in trayer; windows:\n" + desktop.x("xwininfo", "-root", "-tree"),
    )
    return next(iter(found))


def picture(desktop: Desktop, window: str) -> TrayState:
    """Which of the four pictures the docked window shows, judged by its colours on screen."""
    png = subprocess.run(
        ["import", "-window", window, "png:-"],
        env={**os.environ, "DISPLAY": desktop.display},
        capture_output=True,
        check=True,
    ).stdout
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 16) or []

    def votes(colour: tuple[int, int, int]) -> int:
        return sum(n for n, p in colours if sum(abs(p[i] - colour[i]) for i in range(3)) < 60)

    return max(COLOURS, key=lambda state: votes(COLOURS[state]))


def title(desktop: Desktop, window: str) -> str:
    """The icon window's name, which pystray's X backend sets to the tooltip text."""
    first = desktop.x("xwininfo", "-id", window).strip().splitlines()[0]
    return first.split('"', 1)[1].rsplit('"', 1)[0]


def test_icon_docks_and_its_picture_and_tooltip_follow_the_state(
    start_app, desktop: Desktop, tmp_path: Path, screenshots: Path
) -> None:
    config, a, b = two_folders(tmp_path)
    write_file(a / "hello.txt", "hello")
    harness = start_app("xorg", config)
    window = docked_icon(desktop, harness)
    harness.wait((b / "hello.txt").exists, "the initial sync")
    harness.wait(
        lambda: "Synced · 2 locations ·" in title(desktop, window),
        lambda: f"the synced tooltip; title {title(desktop, window)!r}, {harness.app.status}",
    )
    assert picture(desktop, window) is TrayState.SYNCED
    screenshot(desktop.display, screenshots / "tray.png", crop="200x40+824+0")

    harness.app.commands.post(Action.TOGGLE_PAUSE)
    harness.wait(lambda: picture(desktop, window) is TrayState.PAUSED, "the paused picture")
    assert title(desktop, window).startswith("Paused")

    harness.app.commands.post(Action.TOGGLE_PAUSE)
    harness.wait(lambda: picture(desktop, window) is TrayState.SYNCED, "synced again")

    shutil.rmtree(b)
    b.write_text("not a folder any more")
    harness.app.commands.post(Action.SYNC_NOW)
    harness.wait(lambda: picture(desktop, window) is TrayState.ERROR, "the error picture")
    text = title(desktop, window)
    assert text.startswith(f"{b.name} "), text


def test_click_on_plain_x_icon_opens_the_status_window(
    start_app, desktop: Desktop, tmp_path: Path
) -> None:
    config, _a, _b = two_folders(tmp_path)
    harness = start_app("xorg", config)
    assert not harness.app.tray.has_menu
    window = docked_icon(desktop, harness)
    assert not harness.app.status_window.visible
    desktop.x("xdotool", "mousemove", "--window", window, "8", "8", "click", "1")
    harness.wait(lambda: harness.app.status_window.visible, "the status window after a click")


def open_menu(desktop: Desktop, harness: Harness, window: str) -> str:
    """Right-click the GTK icon and wait for the popup menu; return the menu window id."""
    before = set(visible_windows(desktop))
    desktop.x("xdotool", "mousemove", "--window", window, "8", "8", "click", "3")
    new: list[str] = []

    def menu_shown() -> bool:
        new[:] = [w for w in visible_windows(desktop) if w not in before]
        return bool(new)

    harness.wait(
        menu_shown,
        lambda: (
            f"the tray menu to open; icon {window}, icons shown in the tray: "
            f"{shown_tray_icons(desktop.display)}"
        ),
    )
    return new[0]


def visible_windows(desktop: Desktop) -> list[str]:
    return desktop.x(
        "xdotool", "search", "--onlyvisible", "--classname", "filesync", check=False
    ).split()


def wait_closed(desktop: Desktop, harness: Harness, menu: str, timeout: float = 30) -> None:
    """Wait until the menu window is unmapped."""
    harness.wait(lambda: menu not in visible_windows(desktop), "the menu to close", timeout)


def close_menu(desktop: Desktop, harness: Harness, menu: str) -> None:
    """Press Escape until the menu is gone (see :func:`choose` for why it may take two)."""
    for _attempt in range(5):
        desktop.x("xdotool", "key", "Escape")
        try:
            wait_closed(desktop, harness, menu, timeout=2)
        except AssertionError:
            continue
        return
    raise AssertionError("the tray menu does not close")


def choose(
    desktop: Desktop, harness: Harness, window: str, keys: list[str], done: Callable[[], object]
) -> None:
    """Open the menu and pick an item with the keyboard, as a person with a keyboard would.

    GTK maps the menu a moment before it grabs the keyboard, and X has no event that says
    the grab is there, so keys can be lost: then the menu is closed and the choice retried.
    ``done`` tells whether the choice took effect.
    """
    for _attempt in range(3):
        menu = open_menu(desktop, harness, window)
        desktop.x("xdotool", "key", "--delay", "80", *keys, "Return")
        try:
            harness.wait(done, "the menu choice to take effect", timeout=5)
        except AssertionError:
            if menu in visible_windows(desktop):
                close_menu(desktop, harness, menu)
            continue
        wait_closed(desktop, harness, menu)
        return
    raise AssertionError(f"choosing {keys} in the tray menu had no effect")


# From a freshly opened menu: Down selects "Status window…", then Sync now, Pause/Resume …
SYNC_NOW = ["Down", "Down"]
PAUSE = ["Down", "Down", "Down"]
START_AT_LOGIN = ["Up", "Up"]
QUIT = ["Up"]


def test_gtk_menu_drives_the_real_engine(
    start_app, desktop: Desktop, tmp_path: Path, screenshots: Path
) -> None:
    config, a, b = two_folders(tmp_path)
    harness = start_app("gtk", config)
    assert harness.app.tray.has_menu
    window = docked_icon(desktop, harness)
    harness.wait(lambda: harness.app.status.locations, "the engine's first status")

    menu = open_menu(desktop, harness, window)
    screenshot(desktop.display, screenshots / "menu.png", crop="360x300+664+0")
    close_menu(desktop, harness, menu)

    choose(desktop, harness, window, PAUSE, lambda: harness.app.facade.status().paused)
    write_file(a / "while-paused.txt", "x")
    harness.wait(lambda: harness.app.tray.shown_state is TrayState.PAUSED, "the paused picture")
    assert not (b / "while-paused.txt").exists()

    # The same item now reads "Resume".
    choose(desktop, harness, window, PAUSE, lambda: not harness.app.facade.status().paused)
    harness.wait((b / "while-paused.txt").exists, "the file written while paused")

    facade = harness.app.facade
    real_sync_now, calls = facade.sync_now, []

    def spy() -> None:
        calls.append("sync now")
        real_sync_now()

    facade.sync_now = spy  # type: ignore[method-assign]
    write_file(a / "later.txt", "y")
    choose(desktop, harness, window, SYNC_NOW, lambda: calls)
    harness.wait((b / "later.txt").exists, "the sync")


def test_start_at_login_item_writes_a_valid_desktop_file_and_removes_it(
    start_app, desktop: Desktop, tmp_path: Path
) -> None:
    config, _a, _b = two_folders(tmp_path)
    harness = start_app("gtk", config)
    window = docked_icon(desktop, harness)
    entry = tmp_path / "xdg" / "autostart" / "filesync.desktop"
    harness.wait(lambda: harness.app.status.locations, "the engine's first status")

    choose(desktop, harness, window, START_AT_LOGIN, entry.exists)
    result = subprocess.run(
        ["desktop-file-validate", str(entry)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout
    assert load_config().autostart is True
    harness.wait(lambda: harness.app.tray.model.autostart, "the check mark")

    choose(desktop, harness, window, START_AT_LOGIN, lambda: not entry.exists())
    assert load_config().autostart is False


def test_quit_from_the_menu_stops_everything_and_a_second_instance_is_refused(
    desktop: Desktop, home: Path, tmp_path: Path
) -> None:
    config, a, b = two_folders(tmp_path)
    from app.config import save_config

    save_config(config, home / "config" / "filesync.toml")
    write_file(a / "one.txt", "1")
    command = [sys.executable, "-m", "app.ui.desktop", "--tray-backend", "gtk"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.extend(first.stdout or []), name="reader")
    reader.start()
    try:
        wait_until((b / "one.txt").exists, message="the first instance's initial sync")
        wait_until(lambda: shown_tray_icons(desktop.display), message="the icon to dock")
        second = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert second.returncode == 1
        assert "already running" in second.stderr and len(second.stderr.strip().splitlines()) == 1

        window = next(iter(shown_tray_icons(desktop.display)))
        before = set(visible_windows(desktop))
        desktop.x("xdotool", "mousemove", "--window", window, "8", "8", "click", "3")
        wait_until(lambda: set(visible_windows(desktop)) - before, message="the menu")
        desktop.x("xdotool", "key", "--delay", "80", *QUIT, "Return")
        assert first.wait(30) == 0
    finally:
        stop(first)
        reader.join()
    text = b"".join(output).decode(errors="replace")
    assert "FileSync desktop app stopped" in text, text
    index = StateIndex(home / "state" / "index.sqlite")
    try:
        assert "one.txt" in index.load(f"folder:{b}"), "Quit must leave the index committed"
    finally:
        index.close()
    assert "Traceback" not in text, text
    wait_until(
        lambda: not tray_icons(desktop.display),
        message=lambda: f"the icon to leave the tray: {tray_icons(desktop.display)}",
    )


OPEN_DASHBOARD = ["Up", "Up", "Up", "Up"]


def test_open_dashboard_item_opens_the_page_logged_in(
    start_app, desktop: Desktop, tmp_path: Path
) -> None:
    from tests.web_fixtures import Client

    config, _a, _b = two_folders(tmp_path)
    harness = start_app("gtk", config)
    window = docked_icon(desktop, harness)
    harness.wait(lambda: harness.app.status.locations, "the engine's first status")
    choose(desktop, harness, window, OPEN_DASHBOARD, lambda: harness.opened)
    base, token = harness.opened[-1].split("?token=")
    browser = Client(base)
    assert browser.login(token).status == 303
    assert len(browser.get("/api/status").json()["locations"]) == 2
