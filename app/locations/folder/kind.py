"""The folder kind, as the registry knows it: ``folder:/path``."""

from __future__ import annotations

from app.locations.base import FormLayout, FormStyle, LocationKind
from app.locations.folder.location import FolderLocation
from app.locations.spec import local_parser

FOLDER = LocationKind(
    name="folder",
    title="Folder",
    prefixes=("folder",),
    forms=("folder:/path",),
    parse=local_parser("folder"),
    from_spec=FolderLocation.from_spec,
    form=FormLayout(FormStyle.FOLDER, what="folder"),
    opens_at_start=True,
)
