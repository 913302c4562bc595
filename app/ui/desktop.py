"""``filesync`` without a sub-command: the desktop app (tray icon, status window, dialog).

Threading, decided once for every module in :mod:`app.ui`:

* **Tk owns the main thread.** Every widget is created and changed there, and nothing else
  ever calls Tk. The Tk thread polls with ``after()`` (see :mod:`app.ui.controller`).
* **The tray icon runs in its own thread** (``filesync-tray``): the pystray icon is created
  there and runs ``icon.run()``; menu callbacks only post to a
  :class:`~app.ui.commands.CommandQueue` that the Tk thread drains.
* **The engine runs in its own threads** and is reached only through
  :class:`~app.ui.facade.SyncFacade`, whose slow calls run in one worker thread and whose
  results come back as plain data the Tk thread drains. Engine listeners only enqueue.
* Quit joins all of them: tray thread, worker (engine stopped, index committed).

Start-up order: display check (one line and exit when there is none), the single-instance
lock in the state dir, logging, Tk, settings, tray backend, engine.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from app import autostart, paths
from app.config import Config, config_path, load_config
from app.errors import AlreadyRunning, FileSyncError, NoDisplay
from app.instance import InstanceLock
from app.locations import open_location
from app.locations.overlap import check_overlaps
from app.ui.backends import TrayBackendError, choose_backend
from app.ui.commands import Action, CommandQueue
from app.ui.controller import DesktopApp
from app.ui.display import check_display, tk_failure
from app.ui.facade import EngineLike, SyncFacade, engine_for_config
from app.ui.icons import app_icon_path
from app.ui.logsetup import default_log_file, setup_logging
from app.ui.opener import open_with_desktop
from app.ui.tray import Tray

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """The desktop app's command-line options."""

    state: Path | None = None
    config: Path | None = None
    verbose: int = 0
    log_file: Path | None = None
    tray_backend: str | None = None


def parse_options(argv: list[str]) -> Options:
    """Parse ``filesync [--state DIR] [--config FILE] [-v] [--log-file F] [--tray-backend B]``."""
    parser = argparse.ArgumentParser(prog="filesync", description="FileSync desktop app")
    parser.add_argument("--state", type=Path, help="folder of the state index and the lock")
    parser.add_argument("--config", type=Path, help="settings file (default: user config dir)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more")
    parser.add_argument("--log-file", type=Path, help="log file (default: user log dir)")
    parser.add_argument(
        "--tray-backend",
        help="pystray backend: appindicator, gtk, xorg, win32, darwin (default: first that works)",
    )
    ns = parser.parse_args(argv)
    return Options(ns.state, ns.config, ns.verbose, ns.log_file, ns.tray_backend)


def create_tk() -> tk.Tk:
    """The hidden Tk root (the app's windows are Toplevels); NoDisplay if X is unreachable."""
    try:
        root = tk.Tk(className="FileSync")
    except tk.TclError as exc:
        raise tk_failure(exc) from exc
    root.withdraw()
    try:
        root.iconphoto(True, tk.PhotoImage(master=root, file=str(app_icon_path())))
    except tk.TclError:
        log.debug("window icon not set", exc_info=True)
    return root


def create_app(
    root: tk.Tk,
    options: Options,
    engine_factory: Callable[[Config, Path], EngineLike] = engine_for_config,
    opener: Callable[[str], None] = open_with_desktop,
) -> DesktopApp:
    """Build the app on ``root`` (tests call this, then pump Tk themselves)."""
    state_dir = options.state or paths.state_dir()
    config_file = options.config or config_path()
    config = load_config(config_file)
    log_file = options.log_file or default_log_file()
    locations = [open_location(spec) for spec in config.locations]
    check_overlaps(locations, state_dir, log_file)  # one line and exit, as `filesync run` does
    commands = CommandQueue()
    tray: Tray | None = None
    try:
        tray = Tray(choose_backend(options.tray_backend), commands)
    except TrayBackendError as exc:
        log.warning("%s: the status window is shown instead of a tray icon", exc)
    facade = SyncFacade(engine_factory(config, state_dir), config.location_options())
    return DesktopApp(
        root=root,
        config=config,
        config_file=config_file,
        facade=facade,
        tray=tray,
        autostart=autostart.for_platform(),
        log_file=log_file,
        commands=commands,
        opener=opener,
        state_dir=state_dir,
    )


def run(options: Options) -> int:
    """Run the app until Quit (or SIGTERM/SIGINT); return the exit status."""
    root = create_tk()
    try:
        app = create_app(root, options)
    except BaseException:
        root.destroy()
        raise
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    commands = app.commands

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: quitting", signum)
        commands.post(Action.QUIT)

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        app.start()
        log.info("FileSync desktop app started")
        root.mainloop()
    finally:
        app.shutdown()
        root.destroy()
        # Tk objects sit in reference cycles; collect them here, in the Tk thread, rather
        # than let the collector free them in another thread, which Tcl does not allow.
        del app, root
        gc.collect()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``filesync`` with no sub-command; returns the process exit status."""
    options = parse_options(argv)
    try:
        check_display()
    except NoDisplay as exc:
        print(exc.message, file=sys.stderr)
        return 2
    state_dir = options.state or paths.state_dir()
    try:
        lock = InstanceLock(state_dir).acquire()
    except AlreadyRunning as exc:
        print(f"filesync: {exc.message}; look for its icon in the system tray", file=sys.stderr)
        return 1
    setup_logging(options.verbose, options.log_file or default_log_file())
    try:
        return run(options)
    except NoDisplay as exc:
        print(exc.message, file=sys.stderr)
        return 2
    except FileSyncError as exc:
        log.error("%s", exc)
        return 1
    finally:
        lock.release()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
