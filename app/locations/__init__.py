"""Locations: one interface (``base``), one registry of kinds (``registry``), a package per kind."""

from __future__ import annotations

from app.locations.base import Capabilities, FileMeta, Listing, Location
from app.locations.options import LocationOptions
from app.locations.registry import open_with, parse_spec
from app.locations.spec import LocationSpec


def open_location(spec: LocationSpec | str, options: LocationOptions | None = None) -> Location:
    """Build the :class:`Location` for a spec (not yet connected: call ``open()``)."""
    if isinstance(spec, str):
        spec = parse_spec(spec)
    return open_with(spec, options or LocationOptions())


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
