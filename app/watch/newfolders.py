"""Files a watcher finds in a new folder, told apart from files being written there.

A folder created while FileSync watches gets its own inotify watch only after the OS reported
the folder, so files written into it before that produce no event of their own. watchdog (7.x)
then reports every file it finds in the new folder as created, exactly like a real create. The
:class:`~app.watch.writes.WriteTracker` took each such report for a write just begun whose close
would never come, and the engine held those files back for ``QUIET`` seconds: a burst written
into a new folder arrived in pieces whenever the watch started late (a loaded machine).

A create is the watcher's discovery when the file has not changed since the watcher heard of its
new folder: its ctime is older. A file still being written gets a newer ctime with its next
write and counts as a write, as before; one that waits between writes is copied as found and
again when its next write settles, like a file found by any scan.
"""

from __future__ import annotations

import os
import time

#: Seconds a new folder is remembered; its files are reported right after the folder itself.
KEEP = 60.0
#: Forget folders older than ``KEEP`` once this many are remembered (a copied tree).
_PRUNE_ABOVE = 1000


class NewFolders:
    """New folders below one watched root, and when the watcher heard of each (one thread)."""

    def __init__(self, root: str, keep: float = KEEP) -> None:
        self.root = root
        self.keep = keep
        #: Folder path (relative, "/"-separated) -> ``time.time_ns()`` when it was reported.
        self._heard: dict[str, int] = {}

    def created(self, folder: str) -> None:
        """The watcher reported ``folder`` as created (its watch exists from now on)."""
        now = time.time_ns()
        self._heard[folder] = now
        if len(self._heard) > _PRUNE_ABOVE:
            oldest = now - int(self.keep * 1e9)
            self._heard = {f: t for f, t in self._heard.items() if t >= oldest}

    def found(self, path: str) -> bool:
        """True when a create of ``path`` is a file found in a new folder, not a write.

        That is: ``path`` lies in a folder reported as created, and the file has not changed
        since then.
        """
        if not self._heard:
            return False
        heard = None
        folder = path
        while "/" in folder and heard is None:
            folder = folder.rsplit("/", 1)[0]
            heard = self._heard.get(folder)
        if heard is None:
            return False
        try:
            changed = os.stat(os.path.join(self.root, path), follow_symlinks=False).st_ctime_ns
        except OSError:
            return False  # gone already: its delete follows
        return changed < heard
