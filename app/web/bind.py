"""Where the dashboard listens: ``--web HOST:PORT`` parsed and checked, and its TLS files.

Apart from :mod:`app.web.server` so that the command line can read and check ``--web``
without importing uvicorn and starlette, which only a run that serves the dashboard needs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from app.errors import FileSyncError
from app.web.defaults import DEFAULT_HOST as DEFAULT_HOST  # noqa: PLC0414 - re-export
from app.web.defaults import DEFAULT_PORT as DEFAULT_PORT  # noqa: PLC0414 - re-export


class WebAddressError(FileSyncError):
    """The dashboard cannot be served where the user asked."""


@dataclass(frozen=True)
class Bind:
    """Where to listen; ``port`` 0 picks a free one."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    @property
    def loopback(self) -> bool:
        """True for an address only this computer can reach."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_bind(text: str) -> Bind:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``HOST`` (``[::1]:8390`` for IPv6)."""
    raw = text.strip()
    if "/" in raw or "@" in raw:
        raise WebAddressError(
            f"expected HOST:PORT, not {text!r}: put --web after the locations, "
            "or write --web=HOST:PORT"
        )
    host, port_text = DEFAULT_HOST, str(DEFAULT_PORT)
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise WebAddressError(f"expected HOST:PORT, not {text!r}")
        port_text = rest[1:] or port_text
    elif raw.isdigit():
        port_text = raw
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
        host = host or DEFAULT_HOST
    elif raw and ":" not in raw:
        host = raw
    else:
        raise WebAddressError(f"expected HOST:PORT (e.g. 127.0.0.1:8390), not {text!r}")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise WebAddressError(f"the port must be 0 to 65535, not {port_text!r}")
    if not host:
        raise WebAddressError(f"expected HOST:PORT, not {text!r}")
    return Bind(host, int(port_text))


def check_reachable(bind: Bind) -> None:
    """Refuse plain HTTP on an address other computers can reach."""
    if not bind.loopback:
        raise WebAddressError(
            f"refusing to serve the dashboard on {bind.host}, which other computers can "
            "reach, without TLS: give --web-cert FILE and --web-key FILE, or use 127.0.0.1"
        )


@dataclass(frozen=True)
class Tls:
    """A certificate and key in PEM files, for serving beyond this computer."""

    cert: Path
    key: Path
