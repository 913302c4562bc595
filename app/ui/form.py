"""The add-location form as plain data, and the rules that turn it into a location spec.

Kept apart from :mod:`app.ui.dialog` so every rule is testable without a display, and so a
message can be shown next to the field it is about (:class:`FormError` maps field to text).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.errors import FileSyncError, InvalidNumber, LocationsOverlap, SpecError
from app.limits import PORT, check_number
from app.locations import open_location
from app.locations.overlap import check_new_location
from app.locations.registry import KINDS, FormStyle, LocationKind, find_kind, parse_spec
from app.locations.spec import LocationSpec


class FormError(FileSyncError):
    """The form cannot be saved; ``fields`` maps a field name to what is wrong with it."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class LocationForm:
    """What the user typed: ``path`` for a kind with a local path, the rest for a server."""

    kind: str = KINDS[0].name
    path: str = ""
    host: str = ""
    port: str = "21"
    user: str = ""
    password: str = ""
    remote_path: str = "/"
    tls: bool = False


@dataclass(frozen=True)
class InUse:
    """What a new location must not overlap: the synced locations and FileSync's own files."""

    locations: tuple[LocationSpec, ...] = ()
    state_dir: Path | None = None
    log_file: Path | None = None


def build_spec(
    form: LocationForm,
    existing_keys: frozenset[str] = frozenset(),
    in_use: InUse | None = None,
) -> LocationSpec:
    """Return the spec the form describes, or raise :class:`FormError` explaining each field.

    With ``in_use``, a location that would hold FileSync's own files or overlap a synced one
    (the same rules as the command line, :mod:`app.locations.overlap`) is refused too.
    """
    kind = find_kind(form.kind)
    if kind is None or kind.name != form.kind:
        raise FormError({"kind": f"choose one of {', '.join(k.title for k in KINDS)}"})
    if kind.form.style is FormStyle.SERVER:
        spec = _server(form, kind)
        field = "host"
    else:
        spec = _local(form, kind)
        field = "path"
    if spec.key in existing_keys:
        raise FormError({field: "this location is already synced"})
    if in_use is not None:
        try:
            check_new_location(
                open_location(spec),
                [open_location(s) for s in in_use.locations],
                in_use.state_dir,
                in_use.log_file,
            )
        except LocationsOverlap as exc:
            raise FormError({field: exc.message}) from exc
    return spec


def _local(form: LocationForm, kind: LocationKind) -> LocationSpec:
    raw = form.path.strip()
    if not raw:
        raise FormError({"path": f"choose a {kind.form.what} (Browse…)"})
    path = Path(os.path.expanduser(raw))
    if not path.is_absolute():
        raise FormError({"path": "use a full path, starting at the root of a drive"})
    suffix = kind.form.suffix
    if kind.form.style is FormStyle.FOLDER:
        if not path.exists():
            raise FormError({"path": "this folder does not exist; create it first"})
        if not path.is_dir():
            raise FormError({"path": "this is a file, not a folder"})
    else:
        if suffix and path.suffix.lower() != suffix:
            raise FormError({"path": f"a {kind.title}'s name ends in {suffix}"})
        if path.exists() and not path.is_file():
            raise FormError({"path": f"this is a folder, not a {suffix} file"})
        if not path.parent.is_dir():
            raise FormError({"path": f"the folder {path.parent} does not exist"})
    try:
        return parse_spec(f"{kind.name}:{path}")
    except SpecError as exc:
        raise FormError({"path": exc.message}) from exc


def _server(form: LocationForm, kind: LocationKind) -> LocationSpec:
    errors: dict[str, str] = {}
    host = form.host.strip()
    if not host:
        errors["host"] = f"enter the server's name, e.g. {kind.name}.example.org"
    elif any(c in host for c in " /@") or "://" in host:
        errors["host"] = f"only the server's name: no {kind.name}://, user name or path"
    port = 0
    try:
        port = int(check_number(form.port, PORT))
    except InvalidNumber:
        errors["port"] = f"{PORT.describe()}, usually {kind.default_port}"
    remote = form.remote_path.strip() or "/"
    if ".." in remote.split("/") or "\x00" in remote:
        errors["remote_path"] = "must not contain '..'"
    if errors:
        raise FormError(errors)
    try:
        return kind.server_spec(host, port, form.user.strip(), form.password, remote, tls=form.tls)
    except SpecError as exc:
        raise FormError({"host": exc.message}) from exc
