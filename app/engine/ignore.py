"""Which paths are never synced: FileSync's own files plus gitignore-style user patterns.

Patterns come from ``--ignore`` (or the config) and from a ``.filesyncignore`` at each root;
they are merged and apply to every location, so no location can hold a file the others
ignore. pathspec implements gitignore's rules exactly (negation, anchoring, ``**``).
"""

from __future__ import annotations

from collections.abc import Iterable

import pathspec

from app.locations.base import is_internal


class IgnoreRules:
    """A compiled set of gitignore patterns plus FileSync's always-ignored names."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = [p for p in (line.rstrip("\n") for line in patterns) if p.strip()]
        self._spec = pathspec.GitIgnoreSpec.from_lines(self.patterns)

    def ignored(self, path: str) -> bool:
        """True when ``path`` must not be synced."""
        if is_internal(path):
            return True
        return bool(self.patterns) and self._spec.match_file(path)
