"""The ZIP kind, as the registry knows it: ``zip:/path/archive.zip``."""

from __future__ import annotations

from app.locations.base import LocationKind
from app.locations.form.local import file_form
from app.locations.spec import local_parser
from app.locations.zip.location import ZipLocation

ZIP = LocationKind(
    name="zip",
    title="ZIP archive",
    prefixes=("zip",),
    forms=("zip:/path/archive.zip",),
    parse=local_parser("zip"),
    from_spec=ZipLocation.from_spec,
    form=file_form("zip", "ZIP archive", "ZIP file", ".zip", "ZIP archives"),
)
