"""Starting the desktop app where it cannot run: no display, one line; and the self-check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import NoDisplay
from app.ui import desktop
from app.ui.display import check_display


def test_no_display_is_explained_in_one_line_pointing_to_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("FILESYNC_HOME", str(tmp_path))
    assert desktop.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no desktop display" in err and "filesync run" in err


def test_wayland_without_xwayland_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    with pytest.raises(NoDisplay, match="XWayland"):
        check_display()


def test_unreachable_display_is_one_line_too(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(DISPLAY=":4242", FILESYNC_HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "app.ui.desktop"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("20")]
    assert len(lines) == 1 and "filesync run" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_self_check_reports_every_backend_without_a_display() -> None:
    # In a child process: GTK, once initialised by a GUI test, stays loaded in this one.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS")
    }
    result = subprocess.run(
        [sys.executable, "-m", "app.ui.selfcheck"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for name in ("appindicator", "gtk", "xorg", "win32", "darwin"):
        assert f"tray backend {name}" in result.stdout
    assert "icons: 24 present" in result.stdout
    assert "dashboard page: present" in result.stdout
    assert "no display: backends were imported only" in result.stdout
    assert result.returncode == 0, result.stdout
    assert "Traceback" not in result.stderr
