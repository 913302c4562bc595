"""OS file events for folders (inotify on Linux) through watchdog.

watchdog's observer threads call :class:`_Handler` which only translates paths and puts
:class:`Change` records on the engine's queue; all decisions are the engine's. A new folder is
reported as a TREE change, because files closed in it before its inotify watch existed produce
no event of their own; the engine scans the folder, and the files watchdog then reports as
created there are not taken for writes (:mod:`app.watch.newfolders`). If the OS refuses more
watches (the inotify limit), this watcher falls back to polling with a warning instead of
missing changes. Writes and closes feed a :class:`~app.watch.writes.WriteTracker`, so the engine
can tell a file that is still being written and hold it back.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from app.locations.base import is_internal
from app.watch.change import Change, ChangeKind
from app.watch.newfolders import NewFolders
from app.watch.poller import PollingWatcher
from app.watch.watcher import Watcher
from app.watch.writes import WriteTracker, Writing

if TYPE_CHECKING:
    from app.locations.base import Location
    from app.watch.change import ChangeSink

log = logging.getLogger(__name__)

# watchdog re-registers the watch of a folder created inside a just-created folder and warns
# about it from its own thread; the overwrite is harmless, the warning is only noise.
warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)


class _StopRaceFilter(logging.Filter):
    """Drop watchdog's error for an event read while its emitter stops.

    watchdog's emitter thread may be inside ``queue_events`` when ``stop()`` detaches its
    inotify group; it then logs "called when the thread is inactive" at ERROR although nothing
    is wrong (the event is discarded, and it belonged to a watch being torn down anyway). A
    clean shutdown must log no error, so exactly that message is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in str(record.msg)


logging.getLogger("watchdog.observers.inotify").addFilter(_StopRaceFilter())

_LIMIT_ERRNOS = (errno.ENOSPC, errno.EMFILE)
_LINUX = sys.platform.startswith("linux")
#: What the handler acts on, given to watchdog as ``event_filter`` so that the inotify mask
#: itself is narrowed: reads (ours, of every source, a backup tool's) then cost nothing. Writes
#: only feed the :class:`WriteTracker` (one queue record per run of writes), so a file still
#: being written is not copied half-written again and again; closes (Linux) end a run.
_WANTED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


def event_root(location: Location) -> Path:
    """The folder the OS watches for a kind with ``native_events``: its first local path."""
    paths = location.local_paths()
    if not paths:
        raise TypeError(f"{location!r} declares native events but has no folder on this disk")
    return paths[0]


class _Handler(FileSystemEventHandler):
    def __init__(self, location: Location, sink: ChangeSink, writes: WriteTracker) -> None:
        self.key = location.key
        self.root = os.fspath(event_root(location))
        self.location = location
        self._sink = sink
        self.writes = writes
        self.new_folders = NewFolders(self.root)

    def sink(self, change: Change) -> None:
        """Pass ``change`` on, plus a change of every other name of a hard-linked file: the OS
        reports an edit under the name it was made through, but all names hold it now."""
        self._sink(change)
        for path in (change.path, change.dest):
            for other in sorted(self.location.other_names(path)) if path else ():
                self._sink(Change(self.key, ChangeKind.FILE, other))

    def _rel(self, path: str | bytes) -> str | None:
        text = os.fsdecode(path)
        if text == self.root or not text.startswith(self.root + os.sep):
            return None
        rel = text[len(self.root) + 1 :].replace(os.sep, "/")
        return None if is_internal(rel) else rel

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_synthetic and isinstance(event, FileMovedEvent | DirMovedEvent):
            return  # watchdog's per-file moves of a moved folder: its MOVED_TREE covers them
        src = self._rel(event.src_path)
        if isinstance(event, FileMovedEvent):
            dest = self._rel(event.dest_path)
            for path in (src, dest):  # a rename is no write: the file at dest is whole
                if path:
                    self.writes.forget(path)
            if src and dest:
                self.sink(Change(self.key, ChangeKind.MOVED, src, dest))
            elif src or dest:  # moved in from outside, out to the trash, or a temp file landing
                self.sink(Change(self.key, ChangeKind.FILE, src or dest or ""))
            return
        if isinstance(event, DirMovedEvent):
            dest = self._rel(event.dest_path)
            if src and dest:  # one record: split over two batches it would copy every file
                self.sink(Change(self.key, ChangeKind.MOVED_TREE, src, dest))
                return
            for path in (src, dest):
                if path:
                    self.sink(Change(self.key, ChangeKind.TREE, path))
            return
        if src is None:
            return
        if isinstance(event, DirCreatedEvent | DirDeletedEvent):
            if isinstance(event, DirCreatedEvent):
                self.new_folders.created(src)
            self.sink(Change(self.key, ChangeKind.TREE, src))
        elif not event.is_directory:
            if isinstance(event, FileCreatedEvent) and self.new_folders.found(src):
                pass  # in a new folder before its watch: no write seen, copied as found
            elif isinstance(event, FileModifiedEvent | FileCreatedEvent) and not event.is_synthetic:
                if not self.writes.wrote(src):
                    return  # one more write in a run the engine already knows of
            elif isinstance(event, FileClosedEvent):
                self.writes.closed(src)
            elif isinstance(event, FileDeletedEvent):
                self.writes.forget(src)
            self.sink(Change(self.key, ChangeKind.FILE, src))


def _new_observer() -> BaseObserver:
    """watchdog's native observer; on Linux with "full" events, so that a file moved in from
    outside arrives as a move (whole at once), not as a create (which may begin a slow write)."""
    if _LINUX:
        from watchdog.observers.inotify import InotifyObserver

        return InotifyObserver(generate_full_events=True)
    return Observer()


class LocalWatcher(Watcher):
    """Recursive watchdog observer on a folder, with a polling fallback.

    With ``poll_as_well`` (a network or FUSE mount, see ``Capabilities.poll_as_well``) the
    folder is also polled every ``poll_interval``: the observer sees this computer's changes
    at once, the poller those made elsewhere.
    """

    def __init__(
        self,
        location: Location,
        sink: ChangeSink,
        poll_interval: float,
        *,
        poll_as_well: bool = False,
    ) -> None:
        self.location = location
        self.sink = sink
        self.poll_interval = poll_interval
        self.poll_as_well = poll_as_well
        self._observer: BaseObserver | None = None
        self._fallback: PollingWatcher | None = None
        self._poller: PollingWatcher | None = None
        self._writes = WriteTracker()

    def start(self) -> None:
        """Schedule the recursive watch; fall back to polling if the OS refuses."""
        observer: BaseObserver | None = None
        try:
            observer = _new_observer()  # creates the inotify instance: may hit the limit too
            observer.schedule(
                _Handler(self.location, self.sink, self._writes),
                os.fspath(event_root(self.location)),
                recursive=True,
                event_filter=_WANTED_EVENTS,
            )
            observer.start()
        except OSError as exc:
            if exc.errno not in _LIMIT_ERRNOS:
                raise
            log.warning(
                "%s: the OS refused more file watches (%s); polling every %.1f s instead. "
                "Raise fs.inotify.max_user_watches for instant updates.",
                self.location.name,
                exc.strerror,
                self.poll_interval,
            )
            if observer is not None and observer.is_alive():
                observer.stop()
                observer.join()
            self._fallback = PollingWatcher(self.location, self.sink, self.poll_interval)
            self._fallback.start()
            return
        self._observer = observer
        if self.poll_as_well:
            self._poller = PollingWatcher(self.location, self.sink, self.poll_interval)
            self._poller.start()

    def unsettled(self, path: str) -> Writing | None:
        """Whether ``path`` is still being written, from the writes and closes seen."""
        if self._fallback is not None:
            return self._fallback.unsettled(path)
        for name in (path, *sorted(self.location.other_names(path))):
            writing = self._writes.unsettled(name)  # a hard link is written through any name
            if writing is not None:
                return writing
        return self._poller.unsettled(path) if self._poller is not None else None

    @property
    def polling(self) -> bool:
        """True when this watcher fell back to polling."""
        return self._fallback is not None

    def stop(self) -> None:
        """Stop the observer (or the fallback poller) and join its threads."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
        if self._fallback is not None:
            self._fallback.stop()
            self._fallback = None
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
