"""The folder kind, as the registry knows it: ``folder:/path``."""

from __future__ import annotations

from app.locations.base import LocationKind
from app.locations.folder.location import FolderLocation
from app.locations.form.local import folder_form
from app.locations.spec import local_parser

FOLDER = LocationKind(
    name="folder",
    title="Folder",
    prefixes=("folder",),
    forms=("folder:/path",),
    parse=local_parser("folder"),
    from_spec=FolderLocation.from_spec,
    form=folder_form("folder"),
    opens_at_start=True,
)
