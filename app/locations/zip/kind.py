"""The ZIP kind, as the registry knows it: ``zip:/path/archive.zip``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.locations.base import LocationKind
from app.locations.form.local import file_form
from app.locations.spec import LocationSpec, local_parser

if TYPE_CHECKING:
    from app.locations.base import Location
    from app.locations.options import LocationOptions


def _open(spec: LocationSpec, options: LocationOptions) -> Location:
    """The location; its modules load only now, never in a run without a ZIP archive."""
    from app.locations.zip.location import ZipLocation

    return ZipLocation.from_spec(spec, options)


ZIP = LocationKind(
    name="zip",
    title="ZIP archive",
    prefixes=("zip",),
    forms=("zip:/path/archive.zip",),
    parse=local_parser("zip"),
    from_spec=_open,
    form=file_form("zip", "ZIP archive", "ZIP file", ".zip", "ZIP archives"),
)
