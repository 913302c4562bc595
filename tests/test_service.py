"""``filesync service install|remove`` (issue 14): a systemd user unit for headless machines.

Run as real subprocesses with a temporary HOME. ``systemctl`` is either missing from PATH
(the commands are printed instead) or a small script standing in for it that records how it
was called; the unit's own command line is then started for real and stopped with SIGTERM.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from app.service import quote
from tests.helpers import wait_until, write_file

REPO = Path(__file__).resolve().parents[1]


def service(tmp: Path, path_dirs: list[Path], *args: str, **env: str) -> str:
    """Run ``filesync service ARGS`` with HOME in ``tmp`` and only ``path_dirs`` on PATH."""
    out = tmp / "service.out"
    environ = {
        "HOME": str(tmp / "home"),
        "PATH": os.pathsep.join(str(p) for p in path_dirs),
        "PYTHONPATH": str(REPO),
        **env,
    }
    with out.open("wb") as f:
        code = subprocess.run(
            [sys.executable, "-m", "app", "service", *args],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=environ,
            cwd=REPO,
            timeout=60,
            check=False,
        ).returncode
    text = out.read_text()
    assert code == 0, text
    return text


def directives(text: str) -> list[str]:
    """The unit's ``Key=value`` lines and sections, without comments or ExecStart."""
    lines = [line.strip() for line in text.splitlines()]
    return [x for x in lines if x and not x.startswith("#") and not x.startswith("ExecStart=")]


def test_install_without_systemctl_writes_the_unit_and_prints_the_commands(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    text = service(tmp_path, [empty], "install")
    unit = tmp_path / "home/.config/systemd/user/filesync.service"
    assert f"wrote {unit}" in text
    assert "systemctl --user did not work here (systemctl is not installed)" in text
    assert (
        "  systemctl --user daemon-reload\n  systemctl --user enable --now filesync.service\n"
        in (text)
    )
    body = unit.read_text()
    assert directives(body) == directives((REPO / "docs/filesync.service").read_text())
    assert "Restart=on-failure" in body
    locations = tmp_path / "home/.config/filesync/locations.txt"
    exec_start = next(x for x in body.splitlines() if x.startswith("ExecStart="))
    expected = [sys.executable, "-m", "app", "run", "--file", str(locations)]
    expected += ["--web", "127.0.0.1:8390"]
    assert exec_start == "ExecStart=" + " ".join(quote(a) for a in expected)
    text = service(tmp_path, [empty], "remove")
    assert f"removed {unit}" in text and not unit.exists()
    assert "  systemctl --user disable --now filesync.service" in text


def test_install_respects_xdg_config_home_and_runs_systemctl(tmp_path: Path) -> None:
    fake = tmp_path / "fake-bin"
    calls = tmp_path / "systemctl.calls"
    write_file(fake / "systemctl", f'#!/bin/sh\necho "$@" >> {calls}\n')
    (fake / "systemctl").chmod(0o755)
    config = tmp_path / "xdg"
    text = service(tmp_path, [fake], "install", XDG_CONFIG_HOME=str(config))
    unit = config / "systemd/user/filesync.service"
    assert unit.is_file() and f"wrote {unit}" in text
    assert not (tmp_path / "home/.config/systemd").exists()
    service(tmp_path, [fake], "remove", XDG_CONFIG_HOME=str(config))
    assert calls.read_text().splitlines() == [
        "--user daemon-reload",
        "--user enable --now filesync.service",
        "--user disable --now filesync.service",
        "--user daemon-reload",
    ]
    assert not unit.exists()


def test_the_units_command_syncs_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    a.mkdir()
    b.mkdir()
    write_file(a / "x.txt", b"x")
    listing = write_file(tmp_path / "locations.txt", f"# synced\nfolder:{a}\nfolder:{b}\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    args = ["install", "--file", str(listing), "--web", "127.0.0.1:0", "--state", str(state)]
    service(tmp_path, [empty], *args)
    body = (tmp_path / "home/.config/systemd/user/filesync.service").read_text()
    exec_start = next(x for x in body.splitlines() if x.startswith("ExecStart="))
    command = shlex.split(exec_start.removeprefix("ExecStart="))
    log = tmp_path / "unit.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_until((b / "x.txt").exists, 60, "the unit's command to sync")
        wait_until(lambda: "dashboard: http://127.0.0.1:" in log.read_text(), 60, "the dashboard")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_mistyped_dashboard_address_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "service", "install", "--web", "localhost:99999"],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "99999" in result.stderr, result.stderr
    assert not (tmp_path / ".config/systemd").exists()
