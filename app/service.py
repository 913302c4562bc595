"""``filesync service install|remove``: run ``filesync run`` as a systemd user service.

For headless machines (a server, a NAS): the unit starts at boot (with lingering enabled) or
login, syncs the locations listed in a file, serves the dashboard, restarts after a failure and
stops cleanly on systemd's SIGTERM (the engine records what landed; see "Stopping" in the
README). The unit written is ``docs/filesync.service`` with this installation's command line.
Where ``systemctl --user`` cannot be used (no systemd, no user session bus), the commands to
run are printed instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from app import paths

COMMANDS = ("service",)
UNIT_NAME = "filesync.service"
DEFAULT_WEB = "127.0.0.1:8390"

#: ``docs/filesync.service`` is this unit with a sample ``ExecStart`` and more comments.
UNIT_TEMPLATE = """\
# FileSync as a systemd user service (written by `filesync service install`).
# It syncs the locations listed in the --file (one per line) and serves the dashboard
# (`filesync dashboard` opens it). Remove it with `filesync service remove`.
[Unit]
Description=FileSync: keep folders, ZIP archives and FTP servers mirrored
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={exec_start}
Restart=on-failure
RestartSec=10
KillSignal=SIGTERM
TimeoutStopSec=90

[Install]
WantedBy=default.target
"""


def add_commands(
    sub: Callable[..., argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """``filesync service install|remove`` (``sub`` is the sub-parsers' ``add_parser``)."""
    service = sub("service", help="install or remove the systemd user service (headless)")
    service.add_argument(
        "action",
        choices=("install", "remove"),
        help="install: write the unit and start it; remove: stop it and delete the unit",
    )
    service.add_argument(
        "--file",
        type=Path,
        metavar="PATH",
        help="the locations file the service syncs (default: locations.txt in the config dir)",
    )
    service.add_argument(
        "--web",
        default=DEFAULT_WEB,
        type=_web_address,
        metavar="HOST:PORT",
        help=f"where the service serves the dashboard (default: {DEFAULT_WEB})",
    )
    common(service)


def _web_address(text: str) -> str:
    """Check ``--web`` now (as ``run --web`` will), so a typo does not become a failing unit.

    :mod:`app.web.bind` loads here, for this command only: the parser that registers it is
    built at every start.
    """
    from app.web.bind import WebAddressError, parse_bind

    try:
        parse_bind(text)
    except WebAddressError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return text


def unit_dir() -> Path:
    """``$XDG_CONFIG_HOME/systemd/user`` (``~/.config/systemd/user`` when it is unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def this_program() -> list[str]:
    """The command that runs this FileSync: the one-file build itself, or Python with ``-m``."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "app"]


def quote(arg: str) -> str:
    """One argument of an ``ExecStart=`` line: systemd's quoting, ``%`` and ``$`` escaped."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    escaped = escaped.replace("$", "$$")
    return f'"{escaped}"'


def unit_text(args: argparse.Namespace) -> str:
    """The unit for this installation: ``filesync run --file … --web …`` and the user's options."""
    command = [*this_program(), "run", "--file", str(locations_file(args)), "--web", args.web]
    if args.state:
        command += ["--state", str(args.state.expanduser().absolute())]
    if args.log_file:
        command += ["--log-file", str(args.log_file.expanduser().absolute())]
    return UNIT_TEMPLATE.format(exec_start=" ".join(quote(a) for a in command))


def locations_file(args: argparse.Namespace) -> Path:
    """The locations file the service reads, as an absolute path."""
    given: Path | None = args.file
    return (given or paths.config_dir() / "locations.txt").expanduser().absolute()


def main(args: argparse.Namespace) -> int:
    """Install or remove the unit; 0 when the unit file is written or removed.

    The ``systemctl --user`` steps are run where they can be, else printed to run by hand.
    """
    target = unit_dir() / UNIT_NAME
    if args.action == "install":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(unit_text(args), encoding="utf-8")
        print(f"wrote {target}")
        where = locations_file(args)
        if not where.is_file():
            print(f"note: write the locations to sync into {where}, one per line")
        if _systemctl([["daemon-reload"], ["enable", "--now", UNIT_NAME]]):
            print(f"started {UNIT_NAME}; it starts at every login")
        print("to run it without a login (at boot): loginctl enable-linger $USER")
        return 0
    if not target.exists():
        print(f"{target} is not installed")
        return 0
    stopped = _systemctl([["disable", "--now", UNIT_NAME]])
    target.unlink()
    print(f"removed {target}")
    if stopped:
        _systemctl([["daemon-reload"]])
    return 0


def _systemctl(steps: Sequence[list[str]]) -> bool:
    """Run ``systemctl --user`` for each step; if that cannot work here, print the commands."""
    import shutil  # neither is loaded by every other command
    import subprocess

    command = shutil.which("systemctl")
    for n, step in enumerate(steps):
        why = "systemctl is not installed"
        if command is not None:
            result = subprocess.run(
                [command, "--user", *step],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                check=False,
                timeout=60,
            )
            if result.returncode == 0:
                continue
            lines = result.stderr.strip().splitlines()
            why = lines[-1] if lines else f"exit status {result.returncode}"
        print(f"systemctl --user did not work here ({why}); run these yourself:")
        for rest in steps[n:]:
            print("  systemctl --user " + " ".join(rest))
        return False
    return True
