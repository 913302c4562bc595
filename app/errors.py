"""The errors a user can act on.

Every failure FileSync reports is a :class:`FileSyncError` subclass whose message is one line
that names the location (never with its password) and, where it matters, the path and what to
do. Library and OS errors are translated at the boundary of each location so the engine and the
front ends only ever deal with these types.
"""

from __future__ import annotations

from app.messages import shown


class FileSyncError(Exception):
    """Base of every error FileSync reports to a user.

    ``location`` is the redacted location name and ``path`` the relative path, when known; the
    front ends show them beside the message. ``key`` is the location's ``Location.key``: the
    engine finds the location an error concerns by it, never by the name shown. The engine
    sets it where the error crosses from a location's worker into the engine.
    """

    def __init__(self, message: str, *, location: str | None = None, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.path = path
        self.key: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.location:
            parts.append(shown(self.location))
        if self.path:
            parts.append(shown(self.path))
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class SpecError(FileSyncError):
    """A location spec (``folder:/…``, ``zip:…``, ``ftp:…``) could not be understood."""


class ConfigError(FileSyncError):
    """The settings file or a command-line option is invalid."""


class FormError(FileSyncError):
    """The add-location form cannot be saved; ``fields`` maps a field's name to what is wrong.

    The dialog shows each message next to its field, so a kind's ``to_spec`` names the field.
    """

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


class InvalidNumber(ConfigError):
    """A number setting is not a finite value in its allowed range (see :mod:`app.limits`)."""


class LocationsOverlap(ConfigError):
    """Two locations, or a location and FileSync's own files, share a place on the disk.

    Syncing would feed FileSync's own writes back to it (an archive inside the folder it
    mirrors, nested folders, the index or log inside a synced folder), so it is refused.
    """


class LocationUnavailable(FileSyncError):
    """A location cannot be reached or trusted right now (missing folder, server down, ...).

    The engine keeps its files in the index and does not delete them elsewhere; it retries.
    """


class AuthenticationFailed(LocationUnavailable):
    """A server refused the user name or password; retrying will not help until it is fixed."""


class UnknownHostKey(LocationUnavailable):
    """An SSH server whose host key is not in ``known_hosts``: refused until the user trusts it.

    ``fingerprint`` is the key's ``SHA256:…`` fingerprint and ``known_hosts_line`` the line that
    trusts it, so the dialog can show the one and append the other (never silently).
    """

    def __init__(
        self,
        message: str,
        *,
        location: str | None = None,
        path: str | None = None,
        fingerprint: str = "",
        known_hosts_line: str = "",
    ) -> None:
        super().__init__(message, location=location, path=path)
        self.fingerprint = fingerprint
        self.known_hosts_line = known_hosts_line


class HostKeyChanged(LocationUnavailable):
    """An SSH server offered a host key other than the one ``known_hosts`` holds for it.

    Someone may be impersonating the server; nothing is sent until the user checks it and
    replaces the old line.
    """


class CorruptArchive(LocationUnavailable):
    """A ZIP location's file is not a readable ZIP archive; it is left untouched."""


class FileVanished(FileSyncError):
    """A file disappeared between being listed and being read; the next event handles it."""


class FileChanged(FileSyncError):
    """A file changed between the engine's decision and its write; the path is planned again."""


class WritesDropped(FileChanged):
    """A batch landed without some of its writes: another program changed those files after
    they were staged (a ZIP archive's member), and its versions were kept.

    Their rows, recorded as the writes were staged, are wrong: the engine puts them back and
    plans ``paths`` again, the location behind on them.
    """

    def __init__(self, message: str, paths: list[str], *, location: str) -> None:
        super().__init__(message, location=location)
        self.paths = paths


class TargetFailed(FileSyncError):
    """One location refused a write or delete (read-only, full, a folder in the way).

    Only that location misses the change: the others get it, and the path is retried there
    with growing pauses until the cause is fixed.
    """


class LocationBusy(FileSyncError):
    """A location did not answer within the engine's deadline (a stalled server, a slow link).

    The engine stops waiting for it: its part of the work is parked and done once the location
    answers again, while the other locations keep syncing.
    """


class UnsafePath(FileSyncError):
    """A name from a location would escape its root (``..``, absolute, NUL): it is refused."""


class LinkedPath(FileSyncError):
    """A path runs through (or is) a symbolic link inside a location; links are never followed.

    ``link`` is the link's relative path. Only paths at or under it wait (the engine holds their
    index rows, so its files are not deleted elsewhere); the location stays available.
    """

    def __init__(
        self,
        message: str,
        *,
        location: str | None = None,
        path: str | None = None,
        link: str = "",
    ) -> None:
        super().__init__(message, location=location, path=path)
        self.link = link


class NotSupported(FileSyncError):
    """The location cannot do this operation (see its declared capabilities)."""


class UnknownVersion(FileSyncError):
    """No trashed version or conflict copy has this id (pruned, resolved or mistyped)."""


class MassDeleteHeld(FileSyncError):
    """Too many files vanished at once from a location; the deletes wait for confirmation."""


class StateIndexUnwritable(FileSyncError):
    """The state index cannot be saved (I/O error, read-only disk); syncing pauses until it can.

    Copies made while the index cannot record them would be forgotten, and a file deleted while
    FileSync is stopped would then come back, so the engine applies nothing until a save works.
    """


class StateDiskFull(StateIndexUnwritable):
    """The disk holding the state index is full; syncing resumes by itself when there is room."""


class AlreadyRunning(FileSyncError):
    """Another FileSync process holds the state directory's lock."""


class NoDisplay(FileSyncError):
    """The desktop app was started where there is no graphical display."""
