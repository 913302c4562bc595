"""The add-location dialog's fields for an SSH/SFTP server, and its "Test connection".

The test shows an unknown server's host key fingerprint and offers "Trust this host", which
appends the key to ``known_hosts`` (never silently: only after the user saw it) and tests
again. A changed host key is reported and never offered for trust.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import FormError, SpecError, UnknownHostKey
from app.locations.form.checks import listing_test
from app.locations.form.fields import (
    ConnectionReport,
    Field,
    FieldValue,
    FollowUp,
    FormLayout,
    FormStyle,
    FormValues,
    Widget,
    text_of,
)
from app.locations.form.server import check_host, port_of
from app.locations.options import LocationOptions
from app.locations.spec import LocationSpec, server_spec

if TYPE_CHECKING:
    from app.locations.base import Location

#: Spec options the form offers, each a file on this computer.
_FILES = ("key", "known_hosts")


def sftp_form(default_port: int) -> FormLayout:
    """Host, port, user, key file or password, remote path and an optional known_hosts."""
    fields = (
        Field("host", "Host:", required=True),
        Field("port", "Port:", Widget.PORT, default=str(default_port), required=True),
        Field("user", "User:", required=True),
        Field("key", "Key file:", Widget.FILE, help="empty: the SSH agent, then ~/.ssh/id_*"),
        Field("password", "Password:", Widget.PASSWORD, help="or the key file's passphrase"),
        Field("remote_path", "Remote path:", default="/", help="~/Sync: in the login's home"),
        Field("known_hosts", "Known hosts:", Widget.FILE, help="empty: ~/.ssh/known_hosts"),
    )

    def to_spec(values: FormValues) -> LocationSpec:
        errors: dict[str, str] = {}
        host = check_host(values, "sftp", errors)
        port = port_of(values, default_port, errors)
        for name in _FILES:
            path = text_of(values, name)
            if path and not Path(path).expanduser().is_file():
                errors[name] = "no such file"
        remote = text_of(values, "remote_path") or "/"
        if ".." in remote.split("/") or "\x00" in remote:
            errors["remote_path"] = "must not contain '..'"
        if errors:
            raise FormError(errors)
        options = tuple(
            (n, str(Path(text_of(values, n)).expanduser())) for n in _FILES if text_of(values, n)
        )
        password = values.get("password", "")
        try:
            return server_spec(
                host,
                port,
                text_of(values, "user"),
                password if isinstance(password, str) else "",
                remote,
                kind="sftp",
                tls=False,
                default_port=default_port,
                options=options,
            )
        except SpecError as exc:
            raise FormError({"host": exc.message}) from exc

    def back(spec: LocationSpec) -> dict[str, FieldValue]:
        values: dict[str, FieldValue] = {n: spec.option(n) for n in _FILES}
        values.update(
            host=spec.host,
            port=str(spec.port),
            user=spec.user,
            password=spec.password,
            remote_path=spec.path,
        )
        return values

    return FormLayout(FormStyle.SERVER, fields, to_spec, back)


def open_sftp(spec: LocationSpec, options: LocationOptions) -> Location:
    """The location; paramiko is imported only now, never by a run without SFTP."""
    from app.locations.sftp.location import SftpLocation

    return SftpLocation.from_spec(spec, options)


_listing = listing_test(open_sftp)


def sftp_test(spec: LocationSpec, options: LocationOptions) -> ConnectionReport:
    """Log in and list; an unknown host key comes back with its fingerprint and a trust button."""
    try:
        return _listing(spec, options)
    except UnknownHostKey as exc:
        line = exc.known_hosts_line

        def trust() -> ConnectionReport:
            from app.locations.sftp import hostkeys

            hostkeys.trust(spec, line)
            return _listing(spec, options)

        return ConnectionReport(
            False,
            f"Unknown host key {exc.fingerprint}: trust it only if it is your server's",
            FollowUp("Trust this host", trust),
        )
