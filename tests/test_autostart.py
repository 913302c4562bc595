"""Start at login: the XDG class for real, the Windows and macOS contents as pure functions."""

from __future__ import annotations

import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.autostart import (
    LAUNCH_AGENT_LABEL,
    MacAutostart,
    XdgAutostart,
    desktop_entry,
    desktop_exec,
    for_platform,
    launch_agent_plist,
    windows_run_value,
)

ODD_COMMAND = ["/opt/File Sync/bin/filesync", "--state", '/home/me/$HOME\'s "dir"\\x', "50%"]


def test_xdg_enable_writes_a_valid_desktop_file_and_disable_removes_it(tmp_path: Path) -> None:
    autostart = XdgAutostart(ODD_COMMAND, config_home=tmp_path)
    assert not autostart.is_enabled()
    autostart.enable()
    assert autostart.is_enabled()
    assert autostart.path == tmp_path / "autostart" / "filesync.desktop"
    validator = shutil.which("desktop-file-validate")
    if validator:
        result = subprocess.run(
            [validator, str(autostart.path)], check=False, capture_output=True, text=True
        )
        assert result.returncode == 0 and not result.stdout.strip(), result.stdout
    autostart.enable()
    autostart.disable()
    assert not autostart.is_enabled()
    autostart.disable()


def test_xdg_uses_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert XdgAutostart(["filesync"]).path == tmp_path / "cfg" / "autostart" / "filesync.desktop"


def test_hidden_entry_counts_as_disabled(tmp_path: Path) -> None:
    autostart = XdgAutostart(["filesync"], config_home=tmp_path)
    autostart.path.parent.mkdir(parents=True)
    autostart.path.write_text(desktop_entry(["filesync"]) + "Hidden=true\n")
    assert not autostart.is_enabled()


def _unquote_exec(value: str) -> list[str]:
    """Undo the two escaping levels of the Desktop Entry spec, as a launcher would."""
    string_level = value.replace("\\\\", "\x00").replace("\x00", "\\")
    args, current, quoted, i = [], "", False, 0
    in_arg = False
    while i < len(string_level):
        ch = string_level[i]
        if quoted and ch == "\\":
            current += string_level[i + 1]
            i += 2
            continue
        if ch == '"':
            quoted, in_arg = not quoted, True
        elif ch == " " and not quoted:
            if in_arg:
                args.append(current)
            current, in_arg = "", False
        else:
            current += ch
            in_arg = True
        i += 1
    if in_arg:
        args.append(current)
    return [a.replace("%%", "%") for a in args]


def test_desktop_exec_quotes_spaces_quotes_and_dollars() -> None:
    line = desktop_entry(ODD_COMMAND)
    exec_value = next(v for v in line.splitlines() if v.startswith("Exec="))[5:]
    assert _unquote_exec(exec_value) == ODD_COMMAND
    assert desktop_exec(["filesync"]) == "filesync"


def test_windows_run_value_quotes_like_windows() -> None:
    assert windows_run_value([r"C:\Program Files\FileSync\filesync.exe"]) == (
        r'"C:\Program Files\FileSync\filesync.exe"'
    )
    assert windows_run_value([r"C:\fs\filesync.exe", "--state", "D:\\s"]) == (
        r"C:\fs\filesync.exe --state D:\s"
    )


def test_launch_agent_plist_runs_the_command_at_load() -> None:
    data = plistlib.loads(launch_agent_plist(ODD_COMMAND))
    assert data == {
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": ODD_COMMAND,
        "RunAtLoad": True,
        "ProcessType": "Interactive",
    }


def test_mac_class_writes_and_removes_its_plist(tmp_path: Path) -> None:
    autostart = MacAutostart(["/Applications/FileSync.app/Contents/MacOS/filesync"], home=tmp_path)
    autostart.set_enabled(True)
    assert autostart.is_enabled()
    assert plistlib.loads(autostart.path.read_bytes())["RunAtLoad"] is True
    autostart.set_enabled(False)
    assert not autostart.is_enabled()


def test_platform_choice_is_made_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert isinstance(for_platform(["x"]), MacAutostart)
    monkeypatch.setattr(sys, "platform", "linux")
    assert isinstance(for_platform(["x"]), XdgAutostart)
