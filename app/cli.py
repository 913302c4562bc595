"""The command line: ``filesync run …`` (headless) and ``filesync`` (the desktop app).

Both drive the same :class:`~app.engine.engine.Engine`. Usage errors exit 2 with one line on
stderr; ``--once`` exits 0 when every location converged and 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from app import __version__, paths
from app.engine.engine import Engine, EngineSettings
from app.engine.index import StateIndex
from app.errors import FileSyncError, SpecError
from app.instance import InstanceLock
from app.locations import LocationOptions, open_location
from app.locations.spec import LocationSpec, parse_spec
from app.logsetup import setup_logging

log = logging.getLogger("filesync")

PROMPT = "Enter path (folder:/zip:/ftp: or [end]): "
INDEX_FILE = "index.sqlite"


class UsageError(FileSyncError):
    """The command line itself is wrong (exit status 2)."""


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", type=Path, metavar="DIR", help="folder for the state index")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail")
    parser.add_argument("--log-file", type=Path, metavar="PATH", help="also log to this file")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and for the desktop app's own options)."""
    parser = argparse.ArgumentParser(
        prog="filesync",
        description="Keep folders, ZIP archives and FTP servers mirrored in real time. "
        "Without a command, starts the desktop (tray) app.",
    )
    parser.add_argument("--version", action="version", version=f"filesync {__version__}")
    parser.add_argument(
        "--self-check", action="store_true", help="load every backend this build has and exit"
    )
    _common(parser)
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="desktop app: settings file to use"
    )
    parser.add_argument(
        "--tray-backend",
        metavar="NAME",
        help="desktop app: pystray backend (appindicator, gtk, xorg; default: first that works)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="sync headless until Ctrl-C (no desktop needed)")
    run.add_argument("locations", nargs="*", metavar="LOCATION", help="folder:/… zip:/… ftp:…")
    run.add_argument("--file", type=Path, metavar="PATH", help="read locations, one per line")
    run.add_argument("--once", action="store_true", help="initial sync only, then exit")
    run.add_argument("--poll-interval", type=_positive, default=2.0, metavar="SECONDS")
    run.add_argument("--rescan-interval", type=_positive, default=900.0, metavar="SECONDS")
    run.add_argument("--debounce", type=_positive, default=0.05, metavar="SECONDS")
    run.add_argument("--trash-days", type=_positive, default=30.0, metavar="DAYS")
    run.add_argument("--trash-max-mb", type=_positive, default=1024.0, metavar="MB")
    run.add_argument(
        "--ignore", action="append", default=[], metavar="PATTERN", help="gitignore pattern"
    )
    run.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="apply deletes even when most of a location's files vanished at once",
    )
    _common(run)
    return parser


def read_location_file(path: Path) -> list[str]:
    """Locations from a file: one per line, ``#`` comment lines and blank lines allowed.

    A ``#`` inside a line is kept: it may be part of a password.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read location file {path}: {exc.strerror}") from None
    stripped = (line.strip() for line in text.splitlines())
    return [line for line in stripped if line and not line.startswith("#")]


def prompt_locations() -> list[str]:
    """The original interactive prompt: one location per line until ``end``."""
    specs: list[str] = []
    while True:
        try:
            answer = input(PROMPT).strip()
        except EOFError:
            break
        if answer.lower() in ("end", "[end]"):
            break
        if not answer:
            continue
        try:
            parse_spec(answer)
        except SpecError as exc:
            print(f"filesync: {exc}", file=sys.stderr)
            continue
        specs.append(answer)
    return specs


def _gather_specs(args: argparse.Namespace) -> list[LocationSpec]:
    raw: list[str] = list(args.locations)
    if args.file:
        raw += read_location_file(args.file)
    if not raw and sys.stdin.isatty():
        raw = prompt_locations()
    specs = [parse_spec(r) for r in raw]
    if len(specs) < 2:
        raise UsageError(f"give at least two locations to sync (got {len(specs)})")
    keys = [s.key for s in specs]
    for key in keys:
        if keys.count(key) > 1:
            raise UsageError(f"location {key} is given twice")
    return specs


def run(args: argparse.Namespace) -> int:
    """``filesync run``: initial sync, then watch until Ctrl-C or SIGTERM."""
    setup_logging(args.verbose, args.log_file)
    specs = _gather_specs(args)
    state_dir = args.state or paths.state_dir()
    options = LocationOptions(trash_days=args.trash_days, trash_max_mb=args.trash_max_mb)
    settings = EngineSettings(
        debounce=args.debounce,
        poll_interval=args.poll_interval,
        rescan_interval=args.rescan_interval,
        ignore=tuple(args.ignore),
        allow_mass_delete=args.allow_mass_delete,
    )
    with StopSignals() as signals, InstanceLock(state_dir):
        index = StateIndex(state_dir / INDEX_FILE)
        try:
            locations = [open_location(s, options) for s in specs]
            for location in locations:
                if location.kind == "folder":
                    location.open()  # a mistyped folder fails now; a remote one is retried
            engine = Engine(locations, index, settings)
            signals.attach(engine)
            log.info("syncing %s", ", ".join(s.redacted for s in specs))
            if args.once:
                converged = engine.run_once()
                if signals.stop.is_set():
                    log.info("stopped before the sync finished; the next run continues it")
                else:
                    log.info("converged" if converged else "NOT converged: see the errors above")
                return 0 if converged else 1
            return _watch(engine, signals.stop)
        finally:
            index.close()


class StopSignals:
    """SIGTERM and SIGINT ask the engine to stop, at any point: a sync in progress ends at its
    next path or chunk, so a service manager's stop never has to become a kill -9.

    A second Ctrl-C raises :class:`KeyboardInterrupt` at once, for a user who will not wait.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._engine: Engine | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]

    def attach(self, engine: Engine) -> None:
        """Stop ``engine`` on a signal (now, if one came while it was being built)."""
        self._engine = engine
        if self.stop.is_set():
            engine.request_stop()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        if self._engine is not None:
            self._engine.request_stop()


def _watch(engine: Engine, stop: threading.Event) -> int:
    try:
        engine.start()
        if not stop.is_set():
            log.info("initial sync done; watching for changes (Ctrl-C to stop)")
        while not stop.wait(0.5):
            pass
    finally:
        log.info("stopping")
        engine.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``filesync`` console script and of ``python -m app``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.self_check:
            from app.ui.selfcheck import main as self_check

            return self_check()
        if args.command == "run":
            return run(args)
        from app.ui.desktop import main as desktop

        return desktop(list(argv if argv is not None else sys.argv[1:]))
    except (UsageError, SpecError) as exc:
        print(f"filesync: error: {exc}", file=sys.stderr)
        return 2
    except FileSyncError as exc:
        print(f"filesync: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
