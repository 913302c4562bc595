"""The command line: ``filesync run …`` (headless) and ``filesync`` (the desktop app).

Both drive the same :class:`~app.engine.engine.Engine`. Usage errors exit 2 with one line on
stderr; ``--once`` exits 0 when every location converged and 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from app import __version__, dryrun, limits, paths, service
from app.engine.builder import build_engine
from app.engine.engine import Engine
from app.engine.settings import EngineSettings
from app.errors import FileSyncError, InvalidNumber, LocationsOverlap, SpecError
from app.instance import InstanceLock
from app.locations import LocationOptions, open_location
from app.locations.overlap import check_overlaps
from app.locations.registry import parse_spec, short_forms
from app.locations.spec import LocationSpec
from app.logsetup import setup_logging
from app.messages import shown
from app.web import commands as web

log = logging.getLogger("filesync")

PROMPT = "Enter path (folder:/zip:/ftp: or [end]): "
FILE_PROMPT = "Enter path of the locations file: "
#: ``--file`` given without a value: ask for the path on the terminal.
ASK_FOR_FILE = Path("<ask>")


class UsageError(FileSyncError):
    """The command line itself is wrong (exit status 2)."""


def terminal_columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` tells it (``COLUMNS``, else the
    terminal on stdout, else 80), without importing :mod:`shutil`: it brings ``bz2`` and
    ``lzma`` along, 1.5 ms of every start."""
    with contextlib.suppress(KeyError, ValueError):
        if (columns := int(os.environ["COLUMNS"])) > 0:
            return columns
    stdout = sys.__stdout__
    with contextlib.suppress(AttributeError, ValueError, OSError):
        if stdout is not None and (columns := os.get_terminal_size(stdout.fileno()).columns) > 0:
            return columns
    return 80


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, as wide as the terminal (see :func:`terminal_columns`).

    argparse builds one for every option added, and its own default asks ``shutil`` for the
    width, so every start paid for that import whether or not help was shown.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = terminal_columns() - 2  # as argparse does
        super().__init__(prog, indent_increment, max_help_position, width)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (no usage block), exit status 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)  # sub-commands' parsers too
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit 2, as every FileSync usage error does."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(rule: limits.NumberRule) -> Callable[[str], float]:
    """An argparse ``type`` that applies ``rule`` (the same check as the settings file's)."""

    def convert(text: str) -> float:
        try:
            return limits.check_number(text, rule)
        except InvalidNumber as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    return convert


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state", type=Path, metavar="DIR", help="folder for the state index and the lock"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more detail (-vv: also the watchers')",
    )
    parser.add_argument("--log-file", type=Path, metavar="PATH", help="also log to this file")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and for the desktop app's own options)."""
    parser = OneLineParser(
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
    run.add_argument("locations", nargs="*", metavar="LOCATION", help=short_forms())
    run.add_argument(
        "--file",
        type=Path,
        nargs="?",
        const=ASK_FOR_FILE,
        metavar="PATH",
        help="read locations from a file, one per line (no PATH: ask for it on the terminal)",
    )
    run.add_argument("--once", action="store_true", help="initial sync only, then exit")
    run.add_argument(
        "--poll-interval",
        type=_number(limits.POLL_INTERVAL),
        default=None,
        metavar="SECONDS",
        help="how often locations without change events are checked (default: 2 s, or the "
        "kind's own)",
    )
    run.add_argument(
        "--rescan-interval",
        type=_number(limits.RESCAN_INTERVAL),
        default=900.0,
        metavar="SECONDS",
        help="full rescan of every location, for changes a watcher missed (default: %(default)s)",
    )
    run.add_argument(
        "--debounce",
        type=_number(limits.DEBOUNCE),
        default=0.05,
        metavar="SECONDS",
        help="wait this long after a change for more before syncing (default: %(default)s)",
    )
    run.add_argument(
        "--trash-days",
        type=_number(limits.TRASH_DAYS),
        default=30.0,
        metavar="DAYS",
        help="keep overwritten and deleted versions in .filesync/trash this long "
        "(default: %(default)s)",
    )
    run.add_argument(
        "--trash-max-mb",
        type=_number(limits.TRASH_MAX_MB),
        default=1024.0,
        metavar="MB",
        help="cap on each folder's .filesync/trash; the oldest go first (default: %(default)s)",
    )
    run.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="PATTERN",
        help="do not sync paths matching this gitignore-style pattern (repeatable)",
    )
    run.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="apply deletes even when most of a location's files vanished at once",
    )
    web.add_run_options(run)
    dryrun.add_run_options(run)
    _common(run)
    web.add_commands(sub.add_parser, _common)
    service.add_commands(sub.add_parser, _common)
    return parser


def read_location_file(path: Path) -> list[str]:
    """Locations from a file: one per line, ``#`` comment lines and blank lines allowed.

    A ``#`` inside a line is kept: it may be part of a password.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read location file {shown(str(path))}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"location file {shown(str(path))} is not a text file (UTF-8)") from None
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


def ask_location_file() -> list[str]:
    """``--file`` without a path: ask for it on the terminal until a readable file is named.

    :mod:`app.askpath` (and its ``glob``) loads only here: every other start skips it.
    """
    from app.askpath import NoAnswer, ask_path

    if not sys.stdin.isatty():
        raise UsageError("--file needs a path when not run on a terminal: filesync run --file PATH")
    try:
        return ask_path(FILE_PROMPT, read_location_file)
    except NoAnswer:
        raise UsageError("no locations file given") from None


def _gather_specs(args: argparse.Namespace) -> list[LocationSpec]:
    raw: list[str] = list(args.locations)
    if args.file is ASK_FOR_FILE:
        raw += ask_location_file()
    elif args.file:
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
    specs = _gather_specs(args)
    if args.dry_run:
        return dryrun.main(args, specs)
    state_dir = args.state or paths.state_dir()
    options = LocationOptions(
        trash_days=args.trash_days,
        trash_max_mb=args.trash_max_mb,
        poll_interval=args.poll_interval,
    )
    # Before the log file or the state folder is created inside a folder it would loop in.
    check_overlaps([open_location(s, options) for s in specs], state_dir, args.log_file)
    setup_logging(args.verbose, args.log_file)
    settings = EngineSettings(
        debounce=args.debounce,
        rescan_interval=args.rescan_interval,
        ignore=tuple(args.ignore),
        allow_mass_delete=args.allow_mass_delete,
    )
    with StopSignals() as signals, InstanceLock(state_dir):
        # A mistyped folder fails now; a remote location is retried by the engine.
        engine = build_engine(specs, state_dir, settings, options, open_local_now=True)
        try:
            signals.attach(engine)
            log.info("syncing %s", ", ".join(s.redacted for s in specs))
            if args.once:
                converged = engine.run_once()
                if signals.stop.is_set():
                    log.info("stopped before the sync finished; the next run continues it")
                else:
                    log.info("converged" if converged else "NOT converged: see the errors above")
                return 0 if converged else 1
            with web.serving(args, engine, specs, options, state_dir):
                return _watch(engine, signals.stop)
        finally:
            engine.close()


class StopSignals:
    """SIGTERM and SIGINT ask the engine to stop, at any point: a sync in progress ends at its
    next path or chunk, so a service manager's stop never has to become a kill -9.

    A second Ctrl-C raises :class:`KeyboardInterrupt` at once, for a user who will not wait.

    The handler takes no lock: Python runs it in the main thread between two bytecodes, maybe
    while that thread holds the lock of ``stop`` itself (``Event.wait`` holds its condition's
    lock before and after the wait), and ``Event.set`` there would wait for that lock forever:
    the process would never stop. It only queues the signal (``SimpleQueue.put`` is reentrant,
    made for such callers) for a thread that sets ``stop`` and stops the engine.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._engine: Engine | None = None
        self._previous: dict[int, object] = {}
        self._signalled = False
        self._received: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._relay = threading.Thread(
            target=self._relay_signals, name="filesync-signals", daemon=True
        )

    def __enter__(self) -> StopSignals:
        self._relay.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._received.put(None)
        self._relay.join()

    def attach(self, engine: Engine) -> None:
        """Stop ``engine`` on a signal (now, if one came while it was being built)."""
        self._engine = engine
        if self.stop.is_set():
            engine.request_stop()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self._signalled:
            raise KeyboardInterrupt
        self._signalled = True
        self._received.put(signum)

    def _relay_signals(self) -> None:
        """In its own thread, where taking a lock is safe: what a signal asks for."""
        while self._received.get() is not None:
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


def console() -> NoReturn:
    """The ``filesync`` command and ``python -m app``: :func:`main`, then exit.

    After ``filesync run`` the process ends with ``os._exit`` once everything is saved and
    flushed (the engine closed the index and released the instance lock before
    :func:`main` returned; the log handlers and standard streams are flushed here): tearing
    down the interpreter frees every listing and index row one object at a time, 0.1-0.5 s
    after a restart of 100,000 files. Any other command, or a thread still running, gets
    the ordinary exit.
    """
    code = main()
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    if sys.argv[1:2] != ["run"] or any(not t.daemon for t in others):
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``filesync`` console script and of ``python -m app`` (see
    :func:`console`); tests call it in-process."""
    parser = build_parser()
    args = parser.parse_args(argv)
    web.check_args(parser, args)
    try:
        if args.self_check:
            from app.ui.selfcheck import main as self_check

            return self_check()
        if args.command == "run":
            return run(args)
        if args.command in web.COMMANDS:
            return web.main(args)
        if args.command in service.COMMANDS:
            return service.main(args)
        from app.ui.desktop import main as desktop

        return desktop(list(argv if argv is not None else sys.argv[1:]))
    except (UsageError, SpecError, LocationsOverlap) as exc:
        print(f"filesync: error: {exc}", file=sys.stderr)
        return 2
    except FileSyncError as exc:
        print(f"filesync: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
