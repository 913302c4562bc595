"""The form of a server kind: host, port, user, password, remote path and a TLS switch."""

from __future__ import annotations

from app.errors import FormError, InvalidNumber, SpecError
from app.limits import PORT, check_number
from app.locations.form.fields import (
    Field,
    FieldValue,
    FormLayout,
    FormStyle,
    FormValues,
    Widget,
    flag_of,
    text_of,
)
from app.locations.spec import LocationSpec, server_spec

HOST, PORT_FIELD, USER, PASSWORD, REMOTE_PATH, TLS = (
    "host",
    "port",
    "user",
    "password",
    "remote_path",
    "tls",
)


def server_form(kind: str, default_port: int, tls_label: str = "") -> FormLayout:
    """The fields of a server reached as ``kind://user:password@host:port/path``.

    With a ``tls_label`` the form has a TLS switch (the spec's ``tls``, scheme ``kind`` + s).
    """
    fields = [
        Field(HOST, "Host:", required=True),
        Field(PORT_FIELD, "Port:", Widget.PORT, default=str(default_port), required=True),
        Field(USER, "User:"),
        Field(PASSWORD, "Password:", Widget.PASSWORD),
        Field(REMOTE_PATH, "Remote path:", default="/"),
    ]
    if tls_label:
        fields.append(Field(TLS, tls_label, Widget.CHECKBOX, default=False))

    def to_spec(values: FormValues) -> LocationSpec:
        errors: dict[str, str] = {}
        host = check_host(values, kind, errors)
        port = port_of(values, default_port, errors)
        remote = text_of(values, REMOTE_PATH) or "/"
        if ".." in remote.split("/") or "\x00" in remote:
            errors[REMOTE_PATH] = "must not contain '..'"
        if errors:
            raise FormError(errors)
        password = values.get(PASSWORD, "")
        try:
            return server_spec(
                host,
                port,
                text_of(values, USER),
                password if isinstance(password, str) else "",
                remote,
                kind=kind,
                tls=flag_of(values, TLS),
                default_port=default_port,
            )
        except SpecError as exc:
            raise FormError({HOST: exc.message}) from exc

    def back(spec: LocationSpec) -> dict[str, FieldValue]:
        values: dict[str, FieldValue] = {
            HOST: spec.host,
            PORT_FIELD: str(spec.port),
            USER: spec.user,
            PASSWORD: spec.password,
            REMOTE_PATH: spec.path,
        }
        if tls_label:
            values[TLS] = spec.tls
        return values

    return FormLayout(FormStyle.SERVER, tuple(fields), to_spec, back)


def check_host(values: FormValues, kind: str, errors: dict[str, str], name: str = HOST) -> str:
    """The host field's name, or a message in ``errors`` (no scheme, user or path in it)."""
    host = text_of(values, name)
    if not host:
        errors[name] = f"enter the server's name, e.g. {kind}.example.org"
    elif any(c in host for c in " /@") or "://" in host:
        errors[name] = f"only the server's name: no {kind}://, user name or path"
    return host


def port_of(
    values: FormValues, default_port: int, errors: dict[str, str], name: str = PORT_FIELD
) -> int:
    """The port field's number, or 0 and a message in ``errors``."""
    try:
        return int(check_number(text_of(values, name), PORT))
    except InvalidNumber:
        errors[name] = f"{PORT.describe()}, usually {default_port}"
        return 0
