"""Start FileSync at login: one small class per platform behind one interface.

* Linux and other XDG desktops: a ``.desktop`` file in ``$XDG_CONFIG_HOME/autostart``.
* Windows: a value under ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``.
* macOS: a LaunchAgent property list in ``~/Library/LaunchAgents``.

:func:`for_platform` picks one at run time. ``is_enabled`` asks the OS (the file or the
registry), never a flag of ours, so the tray's check item shows the real state even when the
user removed the entry by hand. The file contents are pure functions so they can be tested on
any platform.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import plistlib
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app import paths
from app.config import write_atomically

log = logging.getLogger(__name__)

APP_ID = "filesync"
DISPLAY_NAME = "FileSync"
LAUNCH_AGENT_LABEL = "org.filesync.FileSync"
WINDOWS_RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"


def launch_command() -> list[str]:
    """The command that starts the desktop app: the frozen executable, ``filesync`` or python."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    script = shutil.which("filesync")
    if script:
        return [script]
    return [sys.executable, "-m", "app"]


def desktop_exec(command: Sequence[str]) -> str:
    """Quote a command for a desktop entry's ``Exec`` key (freedesktop Desktop Entry spec)."""
    reserved = set(" \t\n\"'\\><~|&;$*?#()`")
    out = []
    for arg in command:
        if arg and not (set(arg) & reserved):
            out.append(arg.replace("%", "%%"))
            continue
        escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
        escaped = escaped.replace("$", "\\$").replace("%", "%%")
        out.append(f'"{escaped}"')
    return " ".join(out)


def desktop_entry(command: Sequence[str], icon: str = APP_ID) -> str:
    """The text of the XDG autostart ``.desktop`` file that runs ``command``."""
    # Backslashes in a string value are escapes too, so the whole Exec value is escaped again.
    exec_value = desktop_exec(command).replace("\\", "\\\\")
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        f"Name={DISPLAY_NAME}\n"
        "Comment=Keep folders, ZIP archives and FTP servers in sync\n"
        f"Exec={exec_value}\n"
        f"Icon={icon}\n"
        "Terminal=false\n"
        "Categories=Utility;FileTools;\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def windows_run_value(command: Sequence[str]) -> str:
    """The command line stored in the Windows ``Run`` key (quoted the Windows way)."""
    return subprocess.list2cmdline(list(command))


def launch_agent_plist(command: Sequence[str]) -> bytes:
    """The LaunchAgent property list that starts ``command`` at login on macOS."""
    return plistlib.dumps(
        {
            "Label": LAUNCH_AGENT_LABEL,
            "ProgramArguments": list(command),
            "RunAtLoad": True,
            "ProcessType": "Interactive",
        }
    )


class Autostart(ABC):
    """Turns starting at login on and off for one platform."""

    def __init__(self, command: Sequence[str] | None = None) -> None:
        self.command = list(command) if command is not None else launch_command()

    @abstractmethod
    def enable(self) -> None:
        """Register FileSync to start at login (idempotent)."""

    @abstractmethod
    def disable(self) -> None:
        """Stop FileSync from starting at login; doing it twice is not an error."""

    @abstractmethod
    def is_enabled(self) -> bool:
        """True when the OS will start FileSync at the next login."""

    def set_enabled(self, enabled: bool) -> None:
        """Enable or disable, for check boxes."""
        if enabled:
            self.enable()
        else:
            self.disable()


class XdgAutostart(Autostart):
    """A ``.desktop`` file in ``$XDG_CONFIG_HOME/autostart`` (default ``~/.config``)."""

    def __init__(self, command: Sequence[str] | None = None, config_home: Path | None = None):
        super().__init__(command)
        if config_home is None:
            config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        self.path = config_home / "autostart" / f"{APP_ID}.desktop"

    def enable(self) -> None:
        """Write the desktop entry atomically (a half-written one would be ignored at login)."""
        icon = paths.resources_dir() / "icons" / "filesync.png"
        write_atomically(self.path, desktop_entry(self.command, str(icon)))
        self.path.chmod(0o644)
        log.info("start at login enabled: %s", self.path)

    def disable(self) -> None:
        """Remove the desktop entry."""
        self.path.unlink(missing_ok=True)
        log.info("start at login disabled: removed %s", self.path)

    def is_enabled(self) -> bool:
        """True when our desktop entry exists and is not marked hidden."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError:
            return False
        return "\nHidden=true" not in text


class WindowsAutostart(Autostart):  # pragma: no cover - needs winreg, tested by its content
    """A value named ``FileSync`` under the current user's ``Run`` key."""

    def enable(self) -> None:
        """Write the Run value."""
        reg = _winreg()
        with reg.OpenKey(reg.HKEY_CURRENT_USER, WINDOWS_RUN_KEY, 0, reg.KEY_SET_VALUE) as key:
            reg.SetValueEx(key, DISPLAY_NAME, 0, reg.REG_SZ, windows_run_value(self.command))

    def disable(self) -> None:
        """Delete the Run value if present."""
        reg = _winreg()
        with (
            reg.OpenKey(reg.HKEY_CURRENT_USER, WINDOWS_RUN_KEY, 0, reg.KEY_SET_VALUE) as key,
            contextlib.suppress(FileNotFoundError),
        ):
            reg.DeleteValue(key, DISPLAY_NAME)

    def is_enabled(self) -> bool:
        """True when the Run value exists."""
        reg = _winreg()
        try:
            with reg.OpenKey(reg.HKEY_CURRENT_USER, WINDOWS_RUN_KEY) as key:
                reg.QueryValueEx(key, DISPLAY_NAME)
        except FileNotFoundError:
            return False
        return True


def _winreg() -> Any:
    """The ``winreg`` module, imported by name so type checks pass on every platform."""
    return importlib.import_module("winreg")


class MacAutostart(Autostart):
    """A LaunchAgent plist in ``~/Library/LaunchAgents``, loaded by launchd at login."""

    def __init__(self, command: Sequence[str] | None = None, home: Path | None = None):
        super().__init__(command)
        agents = (home or Path.home()) / "Library" / "LaunchAgents"
        self.path = agents / f"{LAUNCH_AGENT_LABEL}.plist"

    def enable(self) -> None:
        """Write the plist (launchd reads it at the next login)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(launch_agent_plist(self.command))

    def disable(self) -> None:
        """Remove the plist."""
        self.path.unlink(missing_ok=True)

    def is_enabled(self) -> bool:
        """True when the plist exists."""
        return self.path.exists()


def for_platform(command: Sequence[str] | None = None) -> Autostart:
    """The autostart implementation for the running OS."""
    if sys.platform == "win32":
        return WindowsAutostart(command)
    if sys.platform == "darwin":
        return MacAutostart(command)
    return XdgAutostart(command)
