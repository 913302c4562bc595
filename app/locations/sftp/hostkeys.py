"""Checking an SSH server's host key against ``known_hosts``, as OpenSSH does.

A host key is what proves the server is the one you meant; trusting a new one silently would
hand passwords and files to whoever answers first. So an unknown key is refused with its
``SHA256:`` fingerprint and the command that trusts it, a changed key is refused loudly, and
only :func:`trust` (the dialog's "Trust this host", after the user saw the fingerprint) ever
writes to ``known_hosts``.

The file is ``~/.ssh/known_hosts`` (``$HOME``), or ``?known_hosts=PATH`` in the location's URL.
Hashed host names and ``[host]:port`` entries are understood (paramiko's ``HostKeys``).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import paramiko

from app.errors import HostKeyChanged, LocationUnavailable, UnknownHostKey
from app.locations.spec import LocationSpec

SSH_PORT = 22


def host_entry(host: str, port: int) -> str:
    """How ``known_hosts`` names a server: ``host``, or ``[host]:port`` off port 22."""
    return host if port == SSH_PORT else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """The key's fingerprint as ``ssh-keygen -l`` shows it: ``SHA256:`` and unpadded base64."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_path(spec: LocationSpec) -> Path:
    """``?known_hosts=PATH`` if given, else ``~/.ssh/known_hosts``."""
    return Path(os.path.expanduser(spec.option("known_hosts") or "~/.ssh/known_hosts"))


def known_hosts_line(spec: LocationSpec, key: paramiko.PKey) -> str:
    """The line that trusts ``key`` for the spec's host and port (with its newline)."""
    return f"{host_entry(spec.host, spec.port)} {key.get_name()} {key.get_base64()}\n"


def load_known(spec: LocationSpec) -> dict[str, paramiko.PKey]:
    """The keys ``known_hosts`` holds for the spec's server, by key type (none if unknown)."""
    path = known_hosts_path(spec)
    keys = paramiko.HostKeys()
    try:
        if path.exists():
            keys.load(str(path))
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise LocationUnavailable(
            f"cannot read {path}: {exc}; fix or move that file", location=spec.redacted
        ) from None
    found = keys.lookup(host_entry(spec.host, spec.port))
    return dict(found) if found is not None else {}


def check(spec: LocationSpec, key: paramiko.PKey, known: dict[str, paramiko.PKey]) -> None:
    """Return if ``known`` holds ``key``; raise :class:`UnknownHostKey` or :class:`HostKeyChanged`.

    ``known`` comes from :func:`load_known`, read before connecting so the handshake could
    ask for a key type the file already holds (as OpenSSH does).
    """
    name, address = spec.redacted, host_entry(spec.host, spec.port)
    path = known_hosts_path(spec)
    held = known.get(key.get_name())
    if held is not None and held == key:
        return
    if held is not None:
        raise HostKeyChanged(
            f"THE HOST KEY OF {address} HAS CHANGED (now {key.get_name()} {fingerprint(key)}, "
            f"{path} holds {fingerprint(held)}): someone may be impersonating the server. "
            f"Nothing was sent. If the server was really reinstalled, remove its old line with "
            f"ssh-keygen -R '{address}' -f {path} and trust the new key",
            location=name,
        )
    port = f"-p {spec.port} " if spec.port != SSH_PORT else ""
    raise UnknownHostKey(
        f"unknown host key for {address}: {key.get_name()} {fingerprint(key)}; if that is "
        f"your server's key, trust it with: ssh-keyscan {port}{spec.host} >> {path} "
        "(or Test connection, Trust this host, in the Add location dialog)",
        location=name,
        fingerprint=fingerprint(key),
        known_hosts_line=known_hosts_line(spec, key),
    )


def trust(spec: LocationSpec, line: str) -> Path:
    """Append ``line`` (from :class:`UnknownHostKey`) to the spec's ``known_hosts``.

    Only for a key the user was shown and accepted. The folder is created private (0700), as
    OpenSSH keeps ``~/.ssh``.
    """
    path = known_hosts_path(spec)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(line if line.endswith("\n") else line + "\n")
    return path
