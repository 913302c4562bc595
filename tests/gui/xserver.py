"""Start and stop the X server, tray host and D-Bus session the GUI tests run under.

Each is a child process of the test run that the fixtures terminate and reap, so the
suite's leak check stays meaningful. Xvfb picks a free display itself (``-displayfd``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import wait_until

TOOLS = ("Xvfb", "trayer", "xdotool", "xwininfo", "import", "dbus-daemon")


def require_tools() -> None:
    """Fail under CI (CI=…) when a tool is missing, skip otherwise: never a silent skip in CI."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not missing:
        return
    message = (
        f"GUI tests need {', '.join(missing)} "
        "(apt-get install xvfb trayer xdotool x11-utils imagemagick dbus)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a child and reap it (kill after 5 s)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def start_xvfb(width: int = 1024, height: int = 768) -> tuple[subprocess.Popen[bytes], str]:
    """Start Xvfb on a free display; return the process and ``:N``."""
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            f"{width}x{height}x24",
            "-nolisten",
            "tcp",
        ],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number.isdigit():
        stop(process)
        raise RuntimeError("Xvfb did not report a display number")
    return process, f":{number}"


def start_dbus() -> tuple[subprocess.Popen[bytes], str]:
    """Start a private D-Bus session daemon; return it and its address."""
    process = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    address = process.stdout.readline().decode().strip()
    if not address:
        stop(process)
        raise RuntimeError("dbus-daemon did not print its address")
    return process, address


def x(display: str, *command: str, check: bool = True) -> str:
    """Run an X client (xdotool, xwininfo, import) on ``display``; return its stdout."""
    env = {**os.environ, "DISPLAY": display}
    result = subprocess.run(command, env=env, capture_output=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed: {result.stderr.decode(errors='replace')}"
        )
    return "\n".join(_decode(line) for line in result.stdout.split(b"\n"))


def _decode(line: bytes) -> str:
    """Window names are UTF-8 (_NET_WM_NAME) or Latin-1 (WM_NAME, as pystray's X icon sets)."""
    try:
        return line.decode()
    except UnicodeDecodeError:
        return line.decode("latin-1")


def start_trayer(display: str) -> subprocess.Popen[bytes]:
    """Start trayer (an XEmbed system tray) and wait until it owns the tray selection."""
    process = subprocess.Popen(
        [
            "trayer",
            "--edge",
            "top",
            "--align",
            "right",
            "--widthtype",
            "request",
            "--height",
            "32",
            "--transparent",
            "false",
            "--tint",
            "0x303030",
            "--SetDockType",
            "false",
        ],
        env={**os.environ, "DISPLAY": display},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: tray_manager(display), timeout=15, message="trayer to own the tray")
    return process


def tray_manager(display: str) -> int:
    """The window owning the XEmbed tray selection on screen 0 (0 when there is none)."""
    import Xlib.display

    connection = Xlib.display.Display(display)
    try:
        atom = connection.intern_atom("_NET_SYSTEM_TRAY_S0")
        owner = connection.get_selection_owner(atom)
        return int(getattr(owner, "id", 0) or 0)
    finally:
        connection.close()


def tray_icons(display: str) -> dict[str, str]:
    """Windows docked in trayer's panel: window id -> window name."""
    tree = x(display, "xwininfo", "-root", "-tree")
    lines = tree.splitlines()
    out: dict[str, str] = {}
    inside = False
    depth = 0
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if '"panel": ("panel" "trayer")' in line:
            inside, depth = True, indent
            continue
        if inside and indent <= depth and line.strip():
            break
        match = re.match(r'\s+(0x[0-9a-f]+) "(.*)": \("([^"]*)"', line)
        if inside and match:
            out[match.group(1)] = match.group(2)
    return out


def shown_tray_icons(display: str) -> dict[str, str]:
    """The docked windows that are mapped. A tray host reparents an icon into its panel a
    moment (seconds, on a loaded machine) before the icon is mapped; a click meanwhile lands
    on the panel and is lost."""
    return {
        window: name
        for window, name in tray_icons(display).items()
        if "IsViewable" in x(display, "xwininfo", "-id", window, check=False)
    }


def screenshot(display: str, path: Path, window: str = "root", crop: str | None = None) -> Path:
    """Save a PNG of a window (or the screen), optionally cropped (``WxH+X+Y``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    command = ["import", "-window", window]
    if crop:
        command += ["-crop", crop, "+repage"]
    x(display, *command, str(path))
    return path
