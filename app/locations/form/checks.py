"""A "Test connection" that fits most remote kinds: connect, list the root, disconnect."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from app.locations.form.fields import ConnectionReport

if TYPE_CHECKING:
    from app.locations.base import Location
    from app.locations.options import LocationOptions
    from app.locations.spec import LocationSpec


def listing_test(
    build: Callable[[LocationSpec, LocationOptions], Location],
) -> Callable[[LocationSpec, LocationOptions], ConnectionReport]:
    """A kind's ``test``: open the location ``build`` makes, list it, close it.

    Answers ``Connected: N files found``; a failure raises its FileSyncError (the dialog
    shows the message).
    """

    def test(spec: LocationSpec, options: LocationOptions) -> ConnectionReport:
        location = build(spec, options)
        try:
            location.open()
            count = len(location.scan())
        finally:
            location.close()
        return ConnectionReport(True, f"Connected: {count} file{'s' if count != 1 else ''} found")

    return test
