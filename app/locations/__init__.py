"""Locations: one interface (``base``), one parser (``spec``), one module per kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.errors import SpecError
from app.locations.base import Capabilities, FileMeta, Listing, Location
from app.locations.options import LocationOptions
from app.locations.spec import LocationSpec, parse_spec

if TYPE_CHECKING:
    from collections.abc import Callable


def open_location(spec: LocationSpec | str, options: LocationOptions | None = None) -> Location:
    """Build the :class:`Location` for a spec (not yet connected: call ``open()``)."""
    if isinstance(spec, str):
        spec = parse_spec(spec)
    options = options or LocationOptions()
    factory: Callable[[LocationSpec, LocationOptions], Location]
    if spec.kind == "folder":
        from app.locations.folder.location import FolderLocation

        factory = FolderLocation.from_spec
    elif spec.kind == "zip":
        from app.locations.zip.location import ZipLocation

        factory = ZipLocation.from_spec
    elif spec.kind == "ftp":
        from app.locations.ftp.location import FtpLocation

        factory = FtpLocation.from_spec
    else:  # pragma: no cover - parse_spec only yields the kinds above
        raise SpecError(f"unknown location kind {spec.kind!r}")
    return factory(spec, options)


__all__ = [
    "Capabilities",
    "FileMeta",
    "Listing",
    "Location",
    "LocationOptions",
    "LocationSpec",
    "open_location",
    "parse_spec",
]
