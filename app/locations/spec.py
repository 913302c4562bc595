"""Location specs, and the parsing rules the kinds share (a local path, a server's URL).

Which kinds exist, and which prefix means which kind, is known only to
:mod:`app.locations.registry`; this module names no kind. A server's spec comes from a URL
``SCHEME://user:pass@host:port/path?options`` (user and password percent-encoded, so they may
hold ``:``, ``@`` and ``/``) or the short form ``SCHEME:user:password@host/path``.

A :class:`LocationSpec` never shows its password: ``str()`` and ``repr()`` print ``***``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from app.errors import InvalidNumber, SpecError
from app.limits import POLL_INTERVAL, check_number
from app.logsetup import register_secret

#: ``?poll=SECONDS`` at the end of a local spec (``folder:/mnt/nas?poll=10``).
_POLL_SUFFIX = re.compile(r"^(.*)\?poll=([^/?]*)$", re.DOTALL)
#: The spec option that sets a location's poll interval (and makes a folder poll as well).
POLL_OPTION = "poll"
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?$")
#: What the registered kinds accept, for error messages (filled by :mod:`app.locations.registry`).
_FORMS: list[str] = []
#: Prefixes of the kinds whose specs may hold a password, for :func:`redact_text`.
_SECRET_PREFIXES: list[str] = []


def add_forms(forms: tuple[str, ...], secret_prefixes: tuple[str, ...] = ()) -> None:
    """Learn a registered kind's example forms and the prefixes under which it holds a password."""
    _FORMS.extend(forms)
    _SECRET_PREFIXES.extend(secret_prefixes)


def expected_forms() -> str:
    """``expected a, b or c``: every form the registered kinds accept."""
    if len(_FORMS) < 2:
        return "expected " + "".join(_FORMS)
    return "expected " + ", ".join(_FORMS[:-1]) + " or " + _FORMS[-1]


class LocationSpec:
    """A parsed location spec: ``kind`` is a registered kind's name (``tls`` for its TLS variant).

    A spec with a ``host`` is a server's; its URL scheme is the kind's name, with an ``s``
    appended for TLS, and its port is left out of the redacted form when it is
    ``default_port``. Immutable (change it with :meth:`replace`), equal and hashed by every
    part but ``default_port``; its ``repr`` leaves the password out.

    A plain slotted class rather than a dataclass: generating a dataclass's methods, with
    ``dataclasses`` and ``inspect`` to load, cost every start a few milliseconds.
    """

    __slots__ = (
        "default_port",
        "host",
        "kind",
        "options",
        "password",
        "path",
        "port",
        "tls",
        "user",
    )

    kind: str
    path: str
    host: str
    port: int
    user: str
    password: str
    tls: bool
    options: tuple[tuple[str, str], ...]
    default_port: int

    def __init__(  # noqa: PLR0917 - its fields in order, as callers pass them
        self,
        kind: str,
        path: str,
        host: str = "",
        port: int = 0,
        user: str = "",
        password: str = "",
        tls: bool = False,
        options: tuple[tuple[str, str], ...] = (),
        default_port: int = 0,
    ) -> None:
        init = object.__setattr__
        init(self, "kind", kind)
        init(self, "path", path)
        init(self, "host", host)
        init(self, "port", port)
        init(self, "user", user)
        init(self, "password", password)
        init(self, "tls", tls)
        init(self, "options", options)
        init(self, "default_port", default_port)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a LocationSpec is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a LocationSpec is immutable: cannot delete {name!r}")

    def _compared(self) -> tuple[object, ...]:
        return (
            self.kind,
            self.path,
            self.host,
            self.port,
            self.user,
            self.password,
            self.tls,
            self.options,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LocationSpec):
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def __repr__(self) -> str:
        return (
            f"LocationSpec(kind={self.kind!r}, path={self.path!r}, host={self.host!r}, "
            f"port={self.port!r}, user={self.user!r}, tls={self.tls!r}, "
            f"options={self.options!r})"
        )

    def replace(
        self,
        *,
        password: str | None = None,
        options: tuple[tuple[str, str], ...] | None = None,
    ) -> LocationSpec:
        """A copy with another password or options: what a spec gets after it is parsed."""
        return LocationSpec(
            self.kind,
            self.path,
            self.host,
            self.port,
            self.user,
            self.password if password is None else password,
            self.tls,
            self.options if options is None else options,
            self.default_port,
        )

    def option(self, name: str, default: str = "") -> str:
        """Return a URL query option (``verify``, ``cafile``), or ``default``."""
        return dict(self.options).get(name, default)

    @property
    def redacted(self) -> str:
        """The spec as a user would type it, with the password replaced by ``***``."""
        if not self.host:
            return f"{self.kind}:{self.path}"
        cred = ""
        if self.user:
            cred = self.user + (":***" if self.password else "") + "@"
        port = "" if self.port == self.default_port else f":{self.port}"
        return f"{self.scheme}://{cred}{self.host}{port}{self.path}"

    @property
    def scheme(self) -> str:
        """The URL scheme of a server's spec: the kind's name, plus ``s`` with TLS."""
        return self.kind + ("s" if self.tls else "")

    @property
    def key(self) -> str:
        """Stable identity for the state index: the redacted spec without the ``***``."""
        if not self.host:
            return f"{self.kind}:{self.path}"
        user = f"{self.user}@" if self.user else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}{self.path}"

    def __str__(self) -> str:
        return self.redacted


def redact_text(text: str) -> str:
    """Best-effort removal of a password from a spec the parser could not understand."""
    prefixes = "|".join(re.escape(p) for p in sorted(_SECRET_PREFIXES, key=len, reverse=True))
    if not prefixes:
        return text
    text = re.sub(rf"((?:{prefixes})://[^:/@]*):[^@]*@", r"\1:***@", text)
    return re.sub(rf"^((?:{prefixes}):(?!//)[^:@/]*):[^@]*@", r"\1:***@", text)


def local_spec(kind: str, raw: str, rest: str) -> LocationSpec:
    """A spec for a kind that lives at a local path: ``kind:PATH`` (``~`` expanded, absolute).

    A trailing ``?poll=SECONDS`` is an option, not part of the path (see :func:`poll_option`).
    """
    options: tuple[tuple[str, str], ...] = ()
    suffix = _POLL_SUFFIX.match(rest)
    if suffix:
        rest, options = suffix.group(1), ((POLL_OPTION, suffix.group(2)),)
    if not rest.strip():
        raise SpecError(f"{raw!r}: the {kind} path is empty; {expected_forms()}")
    if "\x00" in rest:
        raise SpecError(f"{raw!r}: the path contains a NUL character")
    path = Path(os.path.expanduser(rest))
    return LocationSpec(kind=kind, path=str(path.absolute()), options=options)


def poll_option(spec: LocationSpec) -> float | None:
    """The spec's ``?poll=SECONDS``, or None; :class:`SpecError` in one line if it is bad."""
    raw = dict(spec.options).get(POLL_OPTION)
    if raw is None:
        return None
    try:
        return check_number(raw, POLL_INTERVAL)
    except InvalidNumber as exc:
        raise SpecError(f"{spec.redacted}: ?poll= {exc.message}, e.g. ?poll=10") from None


def local_parser(kind: str) -> Callable[[str, str, str], LocationSpec]:
    """The ``parse`` of a kind whose specs are ``kind:PATH`` (see :func:`local_spec`)."""

    def parse(text: str, prefix: str, rest: str) -> LocationSpec:
        return local_spec(kind, text, rest)

    return parse


def _split_hostport(raw: str, hostport: str, default_port: int) -> tuple[str, int]:
    match = _HOST_RE.match(hostport)
    if not match:
        raise SpecError(
            f"{redact_text(raw)!r}: {hostport!r} is not a host name; {expected_forms()}"
        )
    host = match.group(1).strip("[]")
    port = int(match.group(2)) if match.group(2) else default_port
    if not 0 < port < 65536:
        raise SpecError(f"{redact_text(raw)!r}: port {port} is out of range (1-65535)")
    return host, port


def server_url(kind: str, raw: str, default_port: int) -> LocationSpec:
    """A server's spec from ``SCHEME://user:pass@host:port/path?options`` (``SCHEME`` + s: TLS).

    User and password are percent-decoded, so they may hold ``:``, ``@`` and ``/``.
    """
    parts = urlsplit(raw)
    netloc = parts.netloc
    if not netloc:
        raise SpecError(f"{redact_text(raw)!r}: no host; {expected_forms()}")
    user = password = ""
    hostport = netloc
    if "@" in netloc:
        cred, hostport = netloc.rsplit("@", 1)
        user, _, password = cred.partition(":")
        user, password = unquote(user), unquote(password)
    host, port = _split_hostport(raw, hostport, default_port)
    path = unquote(parts.path) or "/"
    options = tuple(parse_qsl(parts.query))
    return LocationSpec(
        kind=kind,
        path=_norm_remote(path),
        host=host,
        port=port,
        user=user,
        password=password,
        tls=parts.scheme.lower() != kind,
        options=options,
        default_port=default_port,
    )


def _norm_remote(path: str) -> str:
    path = "/" + path.strip("/")
    if "\x00" in path or ".." in path.split("/"):
        raise SpecError(f"remote path {path!r} must not contain '..' or NUL")
    return path


def server_short(kind: str, raw: str, rest: str, default_port: int, *, tls: bool) -> LocationSpec:
    """A server's spec from the short form ``kind:user:password@host/path``.

    The password is everything up to the last ``@`` before the host.
    """
    user = password = ""
    hostpath = rest
    if "@" in rest:
        cred, hostpath = rest.rsplit("@", 1)
        user, _, password = cred.partition(":")
    hostport, slash, path = hostpath.partition("/")
    if not hostport:
        raise SpecError(f"{redact_text(raw)!r}: no host; {expected_forms()}")
    host, port = _split_hostport(raw, hostport, default_port)
    return LocationSpec(
        kind=kind,
        path=_norm_remote(slash + path),
        host=host,
        port=port,
        user=user,
        password=password,
        tls=tls,
        default_port=default_port,
    )


def server_spec(
    host: str,
    port: int,
    user: str,
    password: str,
    path: str,
    *,
    kind: str,
    tls: bool,
    default_port: int,
    options: tuple[tuple[str, str], ...] = (),
) -> LocationSpec:
    """Build and validate a server's spec from separate fields (the dialog and the file use this).

    Going through :func:`server_url` keeps one set of rules for host, port and remote path.
    """
    scheme = kind + ("s" if tls else "")
    netloc = f"[{host}]" if ":" in host else host
    cred = f"{quote(user, safe='')}@" if user else ""
    remote = quote("/" + path.strip().lstrip("/"), safe="/")
    spec = server_url(kind, f"{scheme}://{cred}{netloc}:{port}{remote}", default_port)
    register_secret(password)
    return spec.replace(password=password, options=options)
