"""The ZIP kind, as the registry knows it: ``zip:/path/archive.zip``."""

from __future__ import annotations

from app.locations.base import FormLayout, FormStyle, LocationKind
from app.locations.spec import local_parser
from app.locations.zip.location import ZipLocation

ZIP = LocationKind(
    name="zip",
    title="ZIP archive",
    prefixes=("zip",),
    forms=("zip:/path/archive.zip",),
    parse=local_parser("zip"),
    from_spec=ZipLocation.from_spec,
    form=FormLayout(FormStyle.FILE, what="ZIP file", suffix=".zip", file_types="ZIP archives"),
)
