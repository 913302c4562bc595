"""The command line's dashboard parts: ``run --web``, ``status`` and ``dashboard``.

:mod:`app.cli` only registers these; everything the options mean is here.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app import paths
from app.locations import LocationOptions
from app.locations.spec import LocationSpec
from app.web.defaults import DEFAULT_HOST, DEFAULT_PORT

if TYPE_CHECKING:
    from app.web.bind import Bind, Tls
    from app.web.control import EngineLike
    from app.web.server import DashboardServer

log = logging.getLogger("filesync")

COMMANDS = ("status", "dashboard")


def add_run_options(run: argparse.ArgumentParser) -> None:
    """``--web [HOST:PORT]``, ``--web-cert``, ``--web-key`` on ``filesync run``."""
    run.add_argument(
        "--web",
        nargs="?",
        type=_bind,
        const=f"{DEFAULT_HOST}:{DEFAULT_PORT}",  # argparse converts it with _bind
        metavar="HOST:PORT",
        help=f"serve the dashboard and JSON API (default {DEFAULT_HOST}:{DEFAULT_PORT}; "
        "port 0 picks a free one; other computers only with --web-cert and --web-key)",
    )
    run.add_argument(
        "--web-cert",
        type=Path,
        metavar="FILE",
        help="serve the dashboard over HTTPS: certificate (PEM)",
    )
    run.add_argument(
        "--web-key", type=Path, metavar="FILE", help="the certificate's private key (PEM)"
    )


def _bind(text: str) -> Bind:
    from app.web.bind import WebAddressError, parse_bind

    try:
        return parse_bind(text)
    except WebAddressError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors of the dashboard options, before anything starts (exit status 2).

    A run without them has nothing to check, and loads no more of :mod:`app.web` than this
    module: the checks (and the dataclasses behind them) load only for ``--web``.
    """
    if getattr(args, "command", None) != "run":
        return
    if args.web is None and args.web_cert is None and args.web_key is None:
        return
    from app.web.bind import WebAddressError, check_reachable

    try:
        if args.web is not None and args.once:
            raise WebAddressError("--web serves while syncing goes on; it cannot go with --once")
        tls = tls_of(args)
        if args.web is None and tls is not None:
            raise WebAddressError("--web-cert and --web-key need --web")
        if args.web is not None and tls is None:
            check_reachable(args.web)
    except WebAddressError as exc:
        parser.error(exc.message)


def add_commands(
    sub: Callable[..., argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """The ``status`` and ``dashboard`` sub-commands (``sub`` is ``add_parser``)."""
    status = sub("status", help="show the running instance's status (through its dashboard)")
    status.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    common(status)
    dashboard = sub("dashboard", help="open the running instance's dashboard in the browser")
    common(dashboard)


def main(args: argparse.Namespace) -> int:
    """Run ``status`` or ``dashboard``."""
    from app.web import client

    state_dir: Path = args.state or paths.state_dir()
    if args.command == "status":
        return client.print_status(state_dir, args.json)
    return client.open_dashboard(state_dir)


def tls_of(args: argparse.Namespace) -> Tls | None:
    """The TLS files given, checked: both or neither, and readable."""
    cert, key = args.web_cert, args.web_key
    if cert is None and key is None:
        return None
    from app.web.bind import Tls, WebAddressError

    if cert is None or key is None:
        raise WebAddressError("give both --web-cert and --web-key, or neither")
    for path in (cert, key):
        if not path.is_file():
            raise WebAddressError(f"TLS file {path} does not exist")
    return Tls(cert, key)


@contextlib.contextmanager
def serving(
    args: argparse.Namespace,
    engine: EngineLike,
    specs: Sequence[LocationSpec],
    options: LocationOptions,
    state_dir: Path,
) -> Iterator[DashboardServer | None]:
    """Serve the dashboard while the block runs, when ``--web`` was given."""
    if args.web is None:
        yield None
        return
    from app.web.control import EngineControls
    from app.web.server import DashboardServer  # uvicorn and starlette: only when serving

    bind: Bind = args.web
    controls = EngineControls(engine, specs, options, state_dir, args.log_file)
    server = DashboardServer(controls, state_dir, bind, tls_of(args))
    url = server.start()
    log.info("dashboard: %s", url)
    try:
        yield server
    finally:
        server.stop()
