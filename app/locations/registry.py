"""The registry of location kinds: the one place that knows which kinds exist.

Each kind declares one :class:`LocationKind` in its package (``folder/``, ``zip/``, ``ftp/``)
and is registered by one line in :data:`KINDS` below. The command line, the settings file,
the add-location dialog, the tray texts and the opener ask this registry; none of them names a
kind. Adding a kind of location is a new package plus one entry here (see
``app/locations/README.md``).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import SpecError
from app.locations import spec as _spec
from app.locations.base import LocationKind
from app.locations.folder.kind import FOLDER
from app.locations.form.fields import FormStyle
from app.locations.ftp.kind import FTP
from app.locations.s3.kind import S3
from app.locations.sftp.kind import SFTP
from app.locations.zip.kind import ZIP
from app.logsetup import register_secret

if TYPE_CHECKING:
    from app.locations.base import Location
    from app.locations.options import LocationOptions
    from app.locations.spec import LocationSpec

__all__ = [
    "KINDS",
    "FormStyle",
    "LocationKind",
    "find_kind",
    "kind_of",
    "local_prefixes",
    "open_with",
    "opens_at_start",
    "parse_spec",
    "short_forms",
    "short_label",
]

#: Every kind, in the order the dialog offers them (the first is the dialog's default).
KINDS: tuple[LocationKind, ...] = (FOLDER, ZIP, FTP, SFTP, S3)

for _kind in KINDS:
    _spec.add_forms(_kind.forms, _kind.prefixes if _kind.has_password else ())
_BY_PREFIX = {prefix: kind for kind in KINDS for prefix in kind.prefixes}
_BY_SCHEME = {scheme: kind for kind in KINDS for scheme in kind.url_schemes}
del _kind


def find_kind(prefix: str) -> LocationKind | None:
    """The kind a short prefix or URL scheme (``zip``, ``ftps``) means, or None."""
    prefix = prefix.lower()
    return _BY_PREFIX.get(prefix) or _BY_SCHEME.get(prefix)


def kind_of(spec: LocationSpec) -> LocationKind:
    """The kind of a parsed spec (every spec comes from a registered kind)."""
    for kind in KINDS:
        if kind.name == spec.kind:
            return kind
    raise SpecError(f"unknown location kind {spec.kind!r}")


def opens_at_start(name: str) -> bool:
    """True for a kind the command line opens before syncing (a mistyped path fails at once)."""
    kind = _BY_PREFIX.get(name)
    return kind is not None and kind.opens_at_start


def open_with(spec: LocationSpec, options: LocationOptions) -> Location:
    """Build the spec's :class:`Location` through its kind (not yet connected).

    Its poll interval is the spec's ``?poll=`` if given, else the run's
    (``options.poll_interval``) if the user chose one, else its kind's default.
    """
    kind = kind_of(spec)
    location = kind.from_spec(spec, options)
    chosen = _spec.poll_option(spec) or options.poll_interval
    location.poll_interval = chosen or kind.default_poll_interval
    return location


def parse_spec(raw: str) -> LocationSpec:
    """Parse one location spec, or raise :class:`SpecError` naming it and the expected forms."""
    spec = _parse(raw)
    register_secret(spec.password)
    _spec.poll_option(spec)
    return spec


def _parse(raw: str) -> LocationSpec:
    text = raw.strip()
    if not text:
        raise SpecError(f"empty location; {_spec.expected_forms()}")
    scheme, sep, _ = text.partition("://")
    kind = _BY_SCHEME.get(scheme.lower()) if sep else None
    if kind is not None:
        return kind.parse(text, scheme.lower(), text)
    prefix, sep, rest = text.partition(":")
    kind = _BY_PREFIX.get(prefix.lower()) if sep else None
    if kind is None:
        raise SpecError(
            f"{_spec.redact_text(text)!r} is not a location{_guess(text)}; {_spec.expected_forms()}"
        )
    return kind.parse(text, prefix.lower(), rest)


def _guess(text: str) -> str:
    """`` (did you mean zip:…?)`` for a bare local path: the kind whose suffix it has."""
    if not text.startswith(("/", "~", ".")):
        return ""
    local = [k for k in KINDS if k.form.style is not FormStyle.SERVER]
    suffix = Path(text).suffix.lower()
    guess = next((k for k in local if k.form.suffix and k.form.suffix == suffix), None)
    guess = guess or next((k for k in local if not k.form.suffix), None)
    return f" (did you mean {guess.name}:{text}?)" if guess else ""


def short_forms() -> str:
    """``folder:/… zip:/… ftp:…``: one hint per kind, for the command line's help."""
    return " ".join(k.name + (":…" if k.form.style is FormStyle.SERVER else ":/…") for k in KINDS)


def local_prefixes() -> tuple[str, ...]:
    """Prefixes of the kinds whose names are ``prefix:/local/path``."""
    return tuple(k.name for k in KINDS if k.form.style is not FormStyle.SERVER)


def short_label(name: str) -> str:
    """What a person calls a location: ``Documents``, ``photos.zip``, ``ftp.example.org/backup``.

    ``name`` is a location's full name (its redacted spec); windows and tooltips are too narrow
    for it. The full name stays in the log.
    """
    for prefix in local_prefixes():
        if name.startswith(prefix + ":"):
            return posixpath.basename(name[len(prefix) + 1 :].rstrip("/\\")) or name
    schemes = "|".join(re.escape(s) for s in sorted(_BY_SCHEME, key=len, reverse=True))
    match = re.match(rf"^(?:{schemes})://(?:[^@/]*@)?([^/:]+)(?::\d+)?(/.*)?$", name)
    if match:
        return match.group(1) + (match.group(2) or "").rstrip("/")
    return name
