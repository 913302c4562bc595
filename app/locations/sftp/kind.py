"""The SFTP kind, as the registry knows it: a folder on any SSH server.

Accepted: ``sftp://user[:password]@host[:port]/absolute/path`` and the short form
``sftp:user@host/path``; ``~`` as the first path segment is the login's home. URL options:
``key=PATH`` (a private key; its passphrase, if any, is the password) and
``known_hosts=PATH`` (instead of ``~/.ssh/known_hosts``).
"""

from __future__ import annotations

from app.locations.base import LocationKind
from app.locations.sftp.form import open_sftp, sftp_form, sftp_test
from app.locations.spec import LocationSpec, server_short, server_url

DEFAULT_PORT = 22


def _parse(text: str, prefix: str, rest: str) -> LocationSpec:
    if text.lower().startswith("sftp://"):
        return server_url("sftp", text, DEFAULT_PORT)
    return server_short("sftp", text, rest, DEFAULT_PORT, tls=False)


SFTP = LocationKind(
    name="sftp",
    title="SSH/SFTP server",
    prefixes=("sftp",),
    url_schemes=("sftp",),
    forms=("sftp:user@host/path", "sftp://user@host:port/path"),
    parse=_parse,
    from_spec=open_sftp,
    form=sftp_form(DEFAULT_PORT),
    test=sftp_test,
    has_password=True,
    default_port=DEFAULT_PORT,
)
