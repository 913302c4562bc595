"""The FTP kind, as the registry knows it: FTP and FTPS (explicit TLS) servers.

Accepted: the short forms ``ftp:user:password@host/path`` and ``ftps:…``, and URLs
``ftp://user:pass@host:21/path`` / ``ftps://…``. URL query options: ``verify=no`` accepts any
server certificate, ``cafile=PATH`` trusts a certificate file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.locations.base import LocationKind
from app.locations.form.checks import listing_test
from app.locations.form.server import server_form
from app.locations.spec import LocationSpec, server_short, server_url

if TYPE_CHECKING:
    from app.locations.base import Location
    from app.locations.options import LocationOptions

DEFAULT_PORT = 21


def _parse(text: str, prefix: str, rest: str) -> LocationSpec:
    if "://" in text and text.lower().startswith(prefix + "://"):
        return server_url("ftp", text, DEFAULT_PORT)
    return server_short("ftp", text, rest, DEFAULT_PORT, tls=prefix == "ftps")


def _open(spec: LocationSpec, options: LocationOptions) -> Location:
    """The location; ftplib and ssl (~5 MiB) are imported only now, never by a run without FTP."""
    from app.locations.ftp.location import FtpLocation

    return FtpLocation.from_spec(spec, options)


FTP = LocationKind(
    name="ftp",
    title="FTP server",
    prefixes=("ftp", "ftps"),
    url_schemes=("ftp", "ftps"),
    forms=(
        "ftp:user:password@host/path",
        "ftp://user:password@host:port/path",
        "ftps://user:password@host:port/path",
    ),
    parse=_parse,
    from_spec=_open,
    form=server_form("ftp", DEFAULT_PORT, tls_label="Use TLS (FTPS, explicit)"),
    test=listing_test(_open),
    has_password=True,
    default_port=DEFAULT_PORT,
)
