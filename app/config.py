"""User settings: locations, poll interval, ignore patterns and autostart, in one TOML file.

The file lives in the user config dir (:func:`app.paths.config_dir`) so a person can read and
edit it; it is read with :mod:`tomllib` and written by :func:`render_config` (the standard
library cannot write TOML). Every save is atomic (temporary file, fsync, rename) and the file
is mode 0600 because it may hold an FTP password.

FTP passwords go to the OS keyring when one is usable (not keyring's ``fail``/``null``
backends); otherwise they are written into the file and a warning says so. A password is never
logged. The settings file is the desktop app's; the engine's own state lives in the state dir.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import keyring
from keyring.backends import fail, null
from keyring.errors import PasswordDeleteError

from app import paths
from app.errors import ConfigError, InvalidNumber, SpecError
from app.limits import POLL_INTERVAL, check_number
from app.locations.options import LocationOptions
from app.locations.registry import KINDS, FormStyle, LocationKind, find_kind, kind_of, parse_spec
from app.locations.spec import LocationSpec, poll_option

log = logging.getLogger(__name__)

CONFIG_NAME = "filesync.toml"
KEYRING_SERVICE = "filesync"
_PASSWORD_IN_KEYRING = "keyring"


@dataclass(frozen=True)
class Config:
    """What the user chose. Immutable: change it with :func:`dataclasses.replace` and save."""

    locations: tuple[LocationSpec, ...] = ()
    #: Seconds between polls; None: each kind's own default (``LocationKind``).
    poll_interval: float | None = None
    ignore: tuple[str, ...] = ()
    autostart: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def location_options(self) -> LocationOptions:
        """The settings every location of the desktop app is built with."""
        return LocationOptions(poll_interval=self.poll_interval)

    def with_location(self, spec: LocationSpec) -> Config:
        """Return a copy with ``spec`` added, or raise ConfigError if its key is already there."""
        if any(loc.key == spec.key for loc in self.locations):
            raise ConfigError(f"{spec.redacted} is already a location")
        return replace(self, locations=(*self.locations, spec))

    def without_location(self, key: str) -> Config:
        """Return a copy without the location whose :attr:`LocationSpec.key` is ``key``."""
        return replace(self, locations=tuple(loc for loc in self.locations if loc.key != key))


def config_path() -> Path:
    """The settings file in the user config dir (``FILESYNC_HOME`` moves it for tests)."""
    return paths.config_dir() / CONFIG_NAME


class Secrets:
    """FTP passwords in the OS keyring, keyed by the location's password-free key."""

    def usable(self) -> bool:
        """True when keyring has a real backend (not ``fail`` or ``null``)."""
        try:
            backend = keyring.get_keyring()
        except Exception:  # a broken keyring install must not stop the app
            log.warning("the OS keyring could not be loaded", exc_info=True)
            return False
        return not isinstance(backend, fail.Keyring | null.Keyring)

    def get(self, key: str) -> str | None:
        """Return the stored password for a location key, or None."""
        value: str | None = keyring.get_password(KEYRING_SERVICE, key)
        return value

    def set(self, key: str, password: str) -> None:
        """Store a password for a location key."""
        keyring.set_password(KEYRING_SERVICE, key, password)

    def delete(self, key: str) -> None:
        """Forget a location's password; a missing entry is not an error."""
        with contextlib.suppress(PasswordDeleteError):
            keyring.delete_password(KEYRING_SERVICE, key)


def load_config(path: Path | None = None, secrets: Secrets | None = None) -> Config:
    """Read the settings file; a missing file means defaults. Raise ConfigError if invalid."""
    path = path or config_path()
    secrets = secrets or Secrets()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return _from_data(data, path, secrets)


def _from_data(data: dict[str, Any], path: Path, secrets: Secrets) -> Config:
    known = {"locations", "poll_interval", "ignore", "autostart"}
    poll = None
    try:
        if "poll_interval" in data:
            poll = check_number(data["poll_interval"], POLL_INTERVAL)
    except InvalidNumber as exc:
        raise InvalidNumber(f"{path}: poll_interval: {exc.message}") from None
    ignore = data.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise ConfigError(f"{path}: ignore must be a list of patterns in quotes")
    autostart = data.get("autostart", False)
    if not isinstance(autostart, bool):
        raise ConfigError(f"{path}: autostart must be true or false")
    raw_locations = data.get("locations", [])
    if not isinstance(raw_locations, list):
        raise ConfigError(f"{path}: locations must be [[locations]] tables")
    locations = tuple(
        _location_from_table(table, path, i, secrets) for i, table in enumerate(raw_locations, 1)
    )
    return Config(
        locations=locations,
        poll_interval=poll,
        ignore=tuple(ignore),
        autostart=autostart,
        extra={k: v for k, v in data.items() if k not in known},
    )


def _location_from_table(table: Any, path: Path, number: int, secrets: Secrets) -> LocationSpec:
    where = f"{path}: location {number}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    name = table.get("kind")
    kind = find_kind(name) if isinstance(name, str) and name == name.lower() else None
    try:
        if kind is not None and kind.form.style is not FormStyle.SERVER:
            spec = parse_spec(f"{kind.name}:{_text(table, 'path', where)}")
            return _with_options(spec, table, where)
        if kind is not None:
            return _server_from_table(kind, table, where, secrets, tls=name != kind.name)
    except SpecError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    prefixes = [p for k in KINDS for p in k.prefixes]
    expected = ", ".join(prefixes[:-1]) + " or " + prefixes[-1]
    raise ConfigError(f"{where}: kind must be {expected}, not {name!r}")


def _with_options(spec: LocationSpec, table: dict[str, Any], where: str) -> LocationSpec:
    """``spec`` with the table's ``options`` (``poll``), checked as the command line checks them."""
    options = table.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise ConfigError(f"{where}: options must be a table of strings")
    spec = spec.replace(options=tuple(sorted(options.items())))
    poll_option(spec)
    return spec


def _server_from_table(
    kind: LocationKind, table: dict[str, Any], where: str, secrets: Secrets, *, tls: bool
) -> LocationSpec:
    port = table.get("port", kind.default_port)
    if isinstance(port, bool) or not isinstance(port, int):
        raise ConfigError(f"{where}: port must be a whole number")
    options = table.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise ConfigError(f"{where}: options must be a table of strings")
    spec = kind.server_spec(
        _text(table, "host", where),
        port,
        str(table.get("user", "")),
        "",
        str(table.get("path", "/")),
        tls=tls,
        options=tuple(sorted(options.items())),
    )
    if table.get("password_store") == _PASSWORD_IN_KEYRING:
        password = _keyring_password(spec, secrets)
    else:
        password = str(table.get("password", ""))
    return spec.replace(password=password)


def _keyring_password(spec: LocationSpec, secrets: Secrets) -> str:
    try:
        password = secrets.get(spec.key) if secrets.usable() else None
    except Exception as exc:  # keyring backends raise many types; the user must still start
        log.warning("cannot read the password of %s from the OS keyring: %s", spec.redacted, exc)
        return ""
    if password is None:
        log.warning("no password for %s in the OS keyring; add the location again", spec.key)
        return ""
    return password


def _text(table: dict[str, Any], name: str, where: str) -> str:
    value = table.get(name)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {name} must be a non-empty string")
    return value


def save_config(config: Config, path: Path | None = None, secrets: Secrets | None = None) -> Path:
    """Write the settings atomically with mode 0600, FTP passwords to the keyring if usable."""
    path = path or config_path()
    secrets = secrets or Secrets()
    in_keyring: set[str] = set()
    with_password = [s for s in config.locations if kind_of(s).has_password and s.password]
    if with_password and secrets.usable():
        for spec in with_password:
            try:
                secrets.set(spec.key, spec.password)
                in_keyring.add(spec.key)
            except Exception as exc:  # fall back to the file rather than lose the password
                log.warning("cannot store the password of %s in the keyring: %s", spec.key, exc)
    for spec in with_password:
        if spec.key not in in_keyring:
            log.warning(
                "no usable OS keyring: the password of %s is stored in %s (readable only by you)",
                spec.key,
                path,
            )
    write_atomically(path, render_config(config, in_keyring))
    return path


def render_config(
    config: Config, passwords_in_keyring: set[str] | frozenset[str] = frozenset()
) -> str:
    """Return the TOML text of ``config``; FTP passwords not in the keyring are written out."""
    lines = ["# FileSync settings. The desktop app rewrites this file; comments are not kept."]
    if config.poll_interval is not None:
        lines.append(f"poll_interval = {_toml_float(config.poll_interval)}")
    lines += [
        f"autostart = {'true' if config.autostart else 'false'}",
        "ignore = [" + ", ".join(_toml_str(p) for p in config.ignore) + "]",
    ]
    lines.extend(f"{k} = {_toml_value(v)}" for k, v in config.extra.items())
    for spec in config.locations:
        lines.extend(["", "[[locations]]", *_location_lines(spec, passwords_in_keyring)])
    return "\n".join(lines) + "\n"


def _location_lines(spec: LocationSpec, in_keyring: set[str] | frozenset[str]) -> list[str]:
    if not spec.host:
        lines = [f"kind = {_toml_str(spec.kind)}", f"path = {_toml_str(spec.path)}"]
        if spec.options:
            lines.append(f"options = {_toml_value(dict(spec.options))}")
        return lines
    lines = [
        f"kind = {_toml_str(spec.scheme)}",
        f"host = {_toml_str(spec.host)}",
        f"port = {spec.port}",
        f"user = {_toml_str(spec.user)}",
        f"path = {_toml_str(spec.path)}",
    ]
    if spec.options:
        lines.append(f"options = {_toml_value(dict(spec.options))}")
    if spec.key in in_keyring:
        lines.append(f"password_store = {_toml_str(_PASSWORD_IN_KEYRING)}")
    elif spec.password:
        lines.append(f"password = {_toml_str(spec.password)}")
    return lines


def _toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_float(value: float) -> str:
    if not math.isfinite(value):
        raise ConfigError(f"{value} is not a finite number")
    return repr(float(value))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _toml_float(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_str(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise ConfigError(f"cannot write {type(value).__name__} values to the settings file")


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader never sees half a file; mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
