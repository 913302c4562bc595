"""The add-location form as plain data, and the rules that turn it into a location spec.

Kept apart from :mod:`app.ui.dialog` so every rule is testable without a display, and so a
message can be shown next to the field it is about (:class:`FormError` maps field to text).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.config import ftp_spec
from app.errors import FileSyncError, InvalidNumber, LocationsOverlap, SpecError
from app.limits import PORT, check_number
from app.locations import open_location
from app.locations.overlap import check_new_location
from app.locations.spec import LocationSpec, parse_spec

KINDS = {"folder": "Folder", "zip": "ZIP archive", "ftp": "FTP server"}


class FormError(FileSyncError):
    """The form cannot be saved; ``fields`` maps a field name to what is wrong with it."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class LocationForm:
    """What the user typed. ``path`` is used for folder and zip, the rest for FTP."""

    kind: str = "folder"
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
    if form.kind in ("folder", "zip"):
        spec = _local(form)
        field = "path"
    elif form.kind == "ftp":
        spec = _ftp(form)
        field = "host"
    else:
        raise FormError({"kind": f"choose one of {', '.join(KINDS.values())}"})
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


def _local(form: LocationForm) -> LocationSpec:
    raw = form.path.strip()
    if not raw:
        what = "folder" if form.kind == "folder" else "ZIP file"
        raise FormError({"path": f"choose a {what} (Browse…)"})
    path = Path(os.path.expanduser(raw))
    if not path.is_absolute():
        raise FormError({"path": "use a full path, starting at the root of a drive"})
    if form.kind == "folder":
        if not path.exists():
            raise FormError({"path": "this folder does not exist; create it first"})
        if not path.is_dir():
            raise FormError({"path": "this is a file, not a folder"})
    else:
        if path.suffix.lower() != ".zip":
            raise FormError({"path": "a ZIP archive's name ends in .zip"})
        if path.exists() and not path.is_file():
            raise FormError({"path": "this is a folder, not a .zip file"})
        if not path.parent.is_dir():
            raise FormError({"path": f"the folder {path.parent} does not exist"})
    try:
        return parse_spec(f"{form.kind}:{path}")
    except SpecError as exc:
        raise FormError({"path": exc.message}) from exc


def _ftp(form: LocationForm) -> LocationSpec:
    errors: dict[str, str] = {}
    host = form.host.strip()
    if not host:
        errors["host"] = "enter the server's name, e.g. ftp.example.org"
    elif any(c in host for c in " /@") or "://" in host:
        errors["host"] = "only the server's name: no ftp://, user name or path"
    port = 0
    try:
        port = int(check_number(form.port, PORT))
    except InvalidNumber:
        errors["port"] = f"{PORT.describe()}, usually 21"
    remote = form.remote_path.strip() or "/"
    if ".." in remote.split("/") or "\x00" in remote:
        errors["remote_path"] = "must not contain '..'"
    if errors:
        raise FormError(errors)
    try:
        return ftp_spec(host, port, form.user.strip(), form.password, remote, tls=form.tls)
    except SpecError as exc:
        raise FormError({"host": exc.message}) from exc
