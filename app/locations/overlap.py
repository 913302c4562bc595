"""Refusing setups where FileSync would sync its own files into themselves.

A ZIP archive inside a folder it mirrors ends up containing itself (every rewrite is a change
of the folder, which rewrites the archive), nested folders copy ``sub`` into ``sub/sub/…``,
and a state folder or log file inside a synced folder turns every sync into another change.
The same folder given twice under two spellings (``a/../a``, a symlink) syncs with itself.

Each location reports the local paths it occupies (:meth:`Location.local_paths`: a folder its
root, an archive its file, a remote location none). :func:`find_overlap` compares them, after
resolving symlinks and ``..``, with each other and with FileSync's own state folder and log
file, and returns the first clash as a :class:`~app.errors.LocationsOverlap` whose one-line
message names both sides and what to do. It only reads paths, never file contents.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from app.errors import LocationsOverlap
from app.locations.base import Location
from app.messages import shown

#: Roles of FileSync's own files (the others are location kinds: ``folder``, ``zip``).
STATE = "state"
LOG = "log"


class Claim(NamedTuple):
    """A place on the local disk held by a location (``role`` is its kind) or by FileSync."""

    name: str
    path: Path
    role: str

    @property
    def is_location(self) -> bool:
        """True for a location, false for FileSync's own state folder or log file."""
        return self.role not in (STATE, LOG)


def location_claims(locations: Iterable[Location]) -> list[Claim]:
    """The local paths every location occupies, in order."""
    return [Claim(shown(loc.name), p, loc.kind) for loc in locations for p in loc.local_paths()]


def own_claims(state_dir: Path | None = None, log_file: Path | None = None) -> list[Claim]:
    """FileSync's own files: the state folder (index, lock) and the log file, when known."""
    claims = []
    if state_dir is not None:
        state_dir = state_dir.expanduser().absolute()
        claims.append(Claim(f"the state folder {shown(str(state_dir))}", state_dir, STATE))
    if log_file is not None:
        log_file = log_file.expanduser().absolute()
        claims.append(Claim(f"the log file {shown(str(log_file))}", log_file, LOG))
    return claims


def check_overlaps(
    locations: Iterable[Location], state_dir: Path | None = None, log_file: Path | None = None
) -> None:
    """Raise :class:`LocationsOverlap` for the first clash among these paths, if any."""
    problem = find_overlap([*location_claims(locations), *own_claims(state_dir, log_file)])
    if problem is not None:
        raise problem


def check_new_location(
    new: Location,
    existing: Iterable[Location],
    state_dir: Path | None = None,
    log_file: Path | None = None,
) -> None:
    """Raise :class:`LocationsOverlap` if ``new`` clashes with the others or FileSync's files.

    Clashes among the existing ones are not this location's fault and are not reported here.
    """
    others = [*location_claims(existing), *own_claims(state_dir, log_file)]
    problem = find_overlap(location_claims([new]), others)
    if problem is not None:
        raise problem


def find_overlap(claims: Sequence[Claim], others: Sequence[Claim] = ()) -> LocationsOverlap | None:
    """Return the first pair of claims that share a place on the disk, explained; else None.

    Pairs within ``claims`` and pairs of one of ``claims`` with one of ``others`` are checked.
    Two of FileSync's own files never clash here: only a location can feed FileSync's writes
    back into it.
    """
    everything = [*claims, *others]
    real = [_real(c.path) for c in everything]
    for i in range(len(claims)):
        for j in range(i + 1, len(everything)):
            problem = _clash(everything[i], everything[j], real[i], real[j])
            if problem is not None:
                return problem
    return None


def _clash(
    first: Claim, second: Claim, real_first: str, real_second: str
) -> LocationsOverlap | None:
    if not (first.is_location or second.is_location):
        return None
    if real_first == real_second:
        return _same(first, second, real_first)
    if first.is_location and _inside(real_second, real_first):
        return _nested(second, first, real_second, real_first)
    if second.is_location and _inside(real_first, real_second):
        return _nested(first, second, real_first, real_second)
    return None


def _real(path: Path) -> str:
    return os.path.normcase(os.path.realpath(os.path.expanduser(path)))


def _inside(path: str, folder: str) -> bool:
    return path != folder and os.path.commonpath([path, folder]) == folder


def _same(first: Claim, second: Claim, real: str) -> LocationsOverlap:
    if first.is_location and second.is_location:
        noun = "archive" if second.role == "zip" else "folder"
        both = f" (both are {shown(real)})" if str(first.path) != str(second.path) else ""
        return LocationsOverlap(
            f"{second.name} is the same {noun} as {first.name}{both}; give it only once"
        )
    own, location = (first, second) if second.is_location else (second, first)
    return LocationsOverlap(f"{own.name} is {location.name} itself; {_fix(own)}")


def _nested(inner: Claim, outer: Claim, real_inner: str, real_outer: str) -> LocationsOverlap:
    where = f"{inner.name} is inside {outer.name}"
    if (real_inner, real_outer) != (str(inner.path), str(outer.path)):
        where += f" ({shown(real_inner)} is in {shown(real_outer)})"  # a symlink or '..' hid it
    if not inner.is_location:
        return LocationsOverlap(f"{where}: {_why(inner)}; {_fix(inner)}")
    if inner.role == "zip":
        return LocationsOverlap(
            f"{where}: the archive would contain itself; move the archive out of the folder"
        )
    sub = shown(os.path.relpath(real_inner, real_outer))
    return LocationsOverlap(
        f"{where}: its files would be copied into themselves ({sub}/{sub}/…); "
        "sync folders that do not contain each other"
    )


def _why(own: Claim) -> str:
    if own.role == STATE:
        return "FileSync would sync its own index as it writes it"
    return "every line FileSync logs would be a change to sync, and logged again"


def _fix(own: Claim) -> str:
    if own.role == STATE:
        return "use --state with a folder outside every location"
    return "use --log-file with a file outside every location"
