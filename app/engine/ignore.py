"""Which paths are never synced: FileSync's own files plus gitignore-style user patterns.

Patterns come from ``--ignore`` (or the config) and from a ``.filesyncignore`` at each root;
they are merged and apply to every location, so no location can hold a file the others
ignore. pathspec implements gitignore's rules exactly (negation, anchoring, ``**``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pathspec

from app.locations.base import is_internal


class IgnoreRules:
    """A compiled set of gitignore patterns plus FileSync's always-ignored names."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = [p for p in (line.rstrip("\n") for line in patterns) if p.strip()]
        self._spec = pathspec.GitIgnoreSpec.from_lines(self.patterns)
        #: A negation (``!keep.o``) may bring back a file below an ignored folder: then no
        #: folder is skipped unread, and every file is matched on its own.
        self._prunable = bool(self.patterns) and not any(
            p.lstrip().startswith("!") for p in self.patterns
        )

    def ignored(self, path: str) -> bool:
        """True when ``path`` must not be synced."""
        if is_internal(path):
            return True
        return bool(self.patterns) and self._spec.match_file(path)

    def folder_ignored(self, folder: str) -> bool:
        """True when every path below ``folder`` is ignored, so a scan need not read it.

        A pattern that matches a folder matches everything below it (gitignore's rule, which
        pathspec follows by matching ``folder/``); with a negation anywhere nothing is pruned.
        """
        return self._prunable and self._spec.match_file(folder + "/")

    @property
    def prune(self) -> Callable[[str], bool] | None:
        """What a location's scan may skip (:meth:`folder_ignored`), or None for nothing."""
        return self.folder_ignored if self._prunable else None
