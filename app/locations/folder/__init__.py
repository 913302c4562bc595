"""Local folders as locations.

``location`` is the :class:`~app.locations.base.Location`; ``nofollow`` walks and opens paths
without following symbolic links; ``hardlinks`` tracks the other names of hard-linked files.
Modules here import each other directly, never this package's ``__init__``.
"""

from __future__ import annotations

from app.locations.folder.location import FolderLocation

__all__ = ["FolderLocation"]
