"""Parsing location specs: ``folder:/path``, ``zip:/path/a.zip`` and the FTP forms.

FTP accepts the original short form ``ftp:user:password@host/path`` (the password may itself
contain ``:``, ``@`` and ``/`` only in the URL form, where it is percent-encoded) and URLs
``ftp://user:pass@host:21/path`` / ``ftps://…`` (explicit TLS). URL query options:
``verify=no`` accepts any server certificate, ``cafile=PATH`` trusts a certificate file.

A :class:`LocationSpec` never shows its password: ``str()`` and ``repr()`` print ``***``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from app.errors import SpecError
from app.logsetup import register_secret

KINDS = ("folder", "zip", "ftp", "ftps")
EXPECTED_FORMS = (
    "expected folder:/path, zip:/path/archive.zip, ftp:user:password@host/path, "
    "ftp://user:password@host:port/path or ftps://user:password@host:port/path"
)
_FTP_DEFAULT_PORT = 21
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?$")


@dataclass(frozen=True)
class LocationSpec:
    """A parsed location spec. ``kind`` is ``folder``, ``zip`` or ``ftp`` (``tls`` for FTPS)."""

    kind: str
    path: str
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = field(default="", repr=False)
    tls: bool = False
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str, default: str = "") -> str:
        """Return a URL query option (``verify``, ``cafile``), or ``default``."""
        return dict(self.options).get(name, default)

    @property
    def redacted(self) -> str:
        """The spec as a user would type it, with the password replaced by ``***``."""
        if self.kind in ("folder", "zip"):
            return f"{self.kind}:{self.path}"
        scheme = "ftps" if self.tls else "ftp"
        cred = ""
        if self.user:
            cred = self.user + (":***" if self.password else "") + "@"
        port = "" if self.port == _FTP_DEFAULT_PORT else f":{self.port}"
        return f"{scheme}://{cred}{self.host}{port}{self.path}"

    @property
    def key(self) -> str:
        """Stable identity for the state index: the redacted spec without the ``***``."""
        if self.kind in ("folder", "zip"):
            return f"{self.kind}:{self.path}"
        scheme = "ftps" if self.tls else "ftp"
        user = f"{self.user}@" if self.user else ""
        return f"{scheme}://{user}{self.host}:{self.port}{self.path}"

    def __str__(self) -> str:
        return self.redacted


def redact_text(text: str) -> str:
    """Best-effort removal of a password from a spec the parser could not understand."""
    text = re.sub(r"(ftps?://[^:/@]*):[^@]*@", r"\1:***@", text)
    return re.sub(r"^(ftps?:(?!//)[^:@/]*):[^@]*@", r"\1:***@", text)


def _local_path(kind: str, raw: str, rest: str) -> LocationSpec:
    if not rest.strip():
        raise SpecError(f"{raw!r}: the {kind} path is empty; {EXPECTED_FORMS}")
    if "\x00" in rest:
        raise SpecError(f"{raw!r}: the path contains a NUL character")
    path = Path(os.path.expanduser(rest))
    return LocationSpec(kind=kind, path=str(path.absolute()))


def _split_hostport(raw: str, hostport: str) -> tuple[str, int]:
    match = _HOST_RE.match(hostport)
    if not match:
        raise SpecError(f"{redact_text(raw)!r}: {hostport!r} is not a host name; {EXPECTED_FORMS}")
    host = match.group(1).strip("[]")
    port = int(match.group(2)) if match.group(2) else _FTP_DEFAULT_PORT
    if not 0 < port < 65536:
        raise SpecError(f"{redact_text(raw)!r}: port {port} is out of range (1-65535)")
    return host, port


def _ftp_url(raw: str) -> LocationSpec:
    parts = urlsplit(raw)
    netloc = parts.netloc
    if not netloc:
        raise SpecError(f"{redact_text(raw)!r}: no host; {EXPECTED_FORMS}")
    user = password = ""
    hostport = netloc
    if "@" in netloc:
        cred, hostport = netloc.rsplit("@", 1)
        user, _, password = cred.partition(":")
        user, password = unquote(user), unquote(password)
    host, port = _split_hostport(raw, hostport)
    path = unquote(parts.path) or "/"
    options = tuple(parse_qsl(parts.query))
    return LocationSpec(
        kind="ftp",
        path=_norm_remote(path),
        host=host,
        port=port,
        user=user,
        password=password,
        tls=parts.scheme == "ftps",
        options=options,
    )


def _norm_remote(path: str) -> str:
    path = "/" + path.strip("/")
    if "\x00" in path or ".." in path.split("/"):
        raise SpecError(f"remote path {path!r} must not contain '..' or NUL")
    return path


def _ftp_short(raw: str, rest: str) -> LocationSpec:
    # ftp:user:password@host/path  (the password is everything up to the last '@' before host)
    user = password = ""
    hostpath = rest
    if "@" in rest:
        cred, hostpath = rest.rsplit("@", 1)
        user, _, password = cred.partition(":")
    hostport, slash, path = hostpath.partition("/")
    if not hostport:
        raise SpecError(f"{redact_text(raw)!r}: no host; {EXPECTED_FORMS}")
    host, port = _split_hostport(raw, hostport)
    return LocationSpec(
        kind="ftp",
        path=_norm_remote(slash + path),
        host=host,
        port=port,
        user=user,
        password=password,
    )


def parse_spec(raw: str) -> LocationSpec:
    """Parse one location spec, or raise :class:`SpecError` naming it and the expected forms."""
    spec = _parse(raw)
    register_secret(spec.password)
    return spec


def _parse(raw: str) -> LocationSpec:
    text = raw.strip()
    if not text:
        raise SpecError(f"empty location; {EXPECTED_FORMS}")
    lowered = text.lower()
    if lowered.startswith(("ftp://", "ftps://")):
        return _ftp_url(text)
    kind, sep, rest = text.partition(":")
    kind = kind.lower()
    if not sep or kind not in KINDS:
        hint = ""
        if text.startswith(("/", "~", ".")):
            guess = "zip" if lowered.endswith(".zip") else "folder"
            hint = f" (did you mean {guess}:{text}?)"
        raise SpecError(f"{redact_text(text)!r} is not a location{hint}; {EXPECTED_FORMS}")
    if kind in ("folder", "zip"):
        return _local_path(kind, text, rest)
    if kind == "ftps":
        spec = _ftp_short(text, rest)
        return LocationSpec(**{**spec.__dict__, "tls": True})
    return _ftp_short(text, rest)
