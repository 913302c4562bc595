"""One SSH connection with its SFTP session per location, shared by threads, that heals itself.

The engine thread and the poller both call into an SFTP location; every use goes through
:meth:`SftpConnection.session` under one lock, so requests of two threads never interleave.
Trouble is translated here, at the boundary, into FileSync errors:

* a connection that breaks (EOF, reset, a timeout) is dropped and the call retried once on a
  fresh one, because servers and NAT boxes drop idle connections; keepalives every 15 s make
  that rarer, and every request has a timeout;
* a failed (re)connect starts the shared backoff (1 s doubling to 60 s);
* the host key is checked against ``known_hosts`` before anything is sent
  (:mod:`app.locations.sftp.hostkeys`); a refused login is :class:`AuthenticationFailed`;
  anything else is :class:`LocationUnavailable` naming ``host:port``.

Authentication, in order: the key given with ``?key=PATH`` (its passphrase, if any, is the
location's password); otherwise the SSH agent's keys, then ``~/.ssh/id_ed25519``, ``id_ecdsa``
and ``id_rsa``, then the password if one was given. Passwords and passphrases never appear in
a message or the log.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import paramiko

from app.errors import AuthenticationFailed, FileSyncError, LocationUnavailable
from app.locations.remote.backoff import Backoff
from app.locations.sftp import hostkeys
from app.locations.sftp.protocol import StatusError
from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)

T = TypeVar("T")

KEEPALIVE_S = 15
DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
#: A large SSH window: a transfer is not held up waiting for window adjustments.
WINDOW_BYTES = 16 * 1024 * 1024


class _CountingSftp(paramiko.SFTPClient):
    """paramiko's client, counting the requests it sends (requests per poll, in benches)."""

    def __init__(self, sock: paramiko.Channel) -> None:
        super().__init__(sock)
        self.requests = 0

    def _async_request(self, fileobj: object, t: int, *args: object) -> int:
        self.requests += 1
        return cast(int, cast(Any, super())._async_request(fileobj, t, *args))


class SftpConnection:
    """A lazily (re)connected SSH + SFTP session for one location.

    ``home`` is the login's home folder (what ``~`` means), known once connected.
    """

    def __init__(self, spec: LocationSpec, timeout: float) -> None:
        self.spec = spec
        self.timeout = timeout
        self.home = ""
        self._transport: paramiko.Transport | None = None
        self._sftp: _CountingSftp | None = None
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._backoff = Backoff()
        self._requests_before = 0

    @property
    def address(self) -> str:
        """``host:port`` for messages (IPv6 hosts in brackets)."""
        host = f"[{self.spec.host}]" if ":" in self.spec.host else self.spec.host
        return f"{host}:{self.spec.port}"

    @property
    def requests(self) -> int:
        """SFTP requests sent so far, over every connection this location made."""
        current = self._sftp.requests if self._sftp is not None else 0
        return self._requests_before + current

    @contextlib.contextmanager
    def session(self) -> Iterator[paramiko.SFTPClient]:
        """Hold the session (connecting first if needed) for one exchange.

        Raises :class:`RuntimeError` if the thread holding it re-enters (a ``stat`` while
        streaming a download): waiting would deadlock.
        """
        me = threading.get_ident()
        if self._owner == me:
            raise RuntimeError(f"{self.spec.redacted}: SFTP session re-entered by its holder")
        with self._lock:
            self._owner = me
            try:
                yield self._connected()
            finally:
                self._owner = None

    def run(self, what: str, action: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run ``action`` on the session; on a broken connection retry once, fresh.

        A refusal of one request (a status reply: ``OSError``) propagates unchanged: the
        caller knows what "no such file" means for it.
        """
        with self.session() as first:
            try:
                return action(first)
            except Exception as exc:
                if not self.is_broken(exc):
                    raise
                self.drop(exc)
                log.info("%s: connection lost during %s (%s); reconnecting", self.spec.redacted,
                         what, str(exc) or type(exc).__name__)  # fmt: skip
            sftp = self._connected()
            try:
                return action(sftp)
            except Exception as exc:
                if not self.is_broken(exc):
                    raise
                self.drop(exc)
                raise self.unavailable(what, exc) from None

    def is_broken(self, exc: BaseException) -> bool:
        """True if ``exc`` means the connection is unusable (not a refusal of one request)."""
        if isinstance(exc, FileSyncError | StatusError):
            return False
        if isinstance(exc, paramiko.SSHException | EOFError | TimeoutError | ConnectionError):
            return True
        transport = self._transport
        return isinstance(exc, OSError) and (transport is None or not transport.is_active())

    def unavailable(self, what: str, exc: BaseException) -> LocationUnavailable:
        """The error for a failure the user can only wait out or fix on the server."""
        detail = str(exc) or type(exc).__name__
        return LocationUnavailable(
            f"{what} failed on {self.address}: {detail}", location=self.spec.redacted
        )

    def drop(self, reason: BaseException | None = None) -> None:
        """Forget the connection without talking to the server (it may be dead)."""
        sftp, self._sftp = self._sftp, None
        transport, self._transport = self._transport, None
        if sftp is not None:
            self._requests_before += sftp.requests
        if reason is not None:
            log.debug("%s: dropping connection: %r", self.spec.redacted, reason)
        if transport is not None:
            transport.close()

    def reconnect(self) -> paramiko.SFTPClient:
        """Inside a held :meth:`session`: drop the connection and make a new one (or raise)."""
        self.drop()
        return self._connected()

    def close(self) -> None:
        """Close the connection. Safe to call twice."""
        with self._lock:
            self.drop()

    def _connected(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self._transport is not None and self._transport.is_active():
            return self._sftp
        self.drop()
        self._backoff.check()
        try:
            self._sftp = self._login()
        except LocationUnavailable as exc:
            self._backoff.failed(exc)
            raise
        self._backoff.succeeded()
        return self._sftp

    def _login(self) -> _CountingSftp:
        spec = self.spec
        known = hostkeys.load_known(spec)
        try:
            sock = socket.create_connection((spec.host, spec.port), timeout=self.timeout)
        except OSError as exc:
            raise LocationUnavailable(
                f"cannot connect to {self.address}: {exc.strerror or exc}", location=spec.redacted
            ) from None
        transport = paramiko.Transport(sock, default_window_size=WINDOW_BYTES)
        try:
            transport.banner_timeout = transport.handshake_timeout = self.timeout
            transport.auth_timeout = self.timeout
            options = transport.get_security_options()
            preferred = [t for t in options.key_types if t in known]
            options.key_types = preferred + [t for t in options.key_types if t not in known]
            # AES-GCM first: one pass for cipher and integrity, the fastest paramiko offers
            fast = [c for c in options.ciphers if c.endswith("-gcm@openssh.com")]
            options.ciphers = fast + [c for c in options.ciphers if c not in fast]
            transport.start_client(timeout=self.timeout)
            hostkeys.check(spec, transport.get_remote_server_key(), known)
            self._authenticate(transport)
            transport.set_keepalive(KEEPALIVE_S)
            sftp = _CountingSftp.from_transport(transport)
            if sftp is None:
                raise paramiko.SSHException("the server refused the SFTP subsystem")
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(self.timeout)
            self.home = sftp.normalize(".")
        except LocationUnavailable:
            transport.close()
            raise
        except (paramiko.SSHException, EOFError, OSError) as exc:
            transport.close()
            raise self.unavailable("login", exc) from None
        except BaseException:
            transport.close()
            raise
        self._transport = transport
        log.debug("%s: connected, home %s", spec.redacted, self.home)
        return sftp

    # --- authentication -------------------------------------------------------------------

    def _authenticate(self, transport: paramiko.Transport) -> None:
        spec = self.spec
        user = spec.user or getpass.getuser()
        tried: list[str] = []
        skipped: list[str] = []
        explicit = spec.option("key")
        for label, key in self._keys(explicit, skipped):
            try:
                transport.auth_publickey(user, key)
                return
            except paramiko.BadAuthenticationType:
                tried.append(label)
                break  # the server takes no keys at all
            except paramiko.AuthenticationException:
                tried.append(label)
        if spec.password and not explicit:
            try:
                transport.auth_password(user, spec.password)
                return
            except paramiko.AuthenticationException:
                tried.append("the password")
        what = ", ".join(tried) if tried else "no key (none found) and no password"
        hint = f"; skipped {', '.join(skipped)} (protected by a passphrase)" if skipped else ""
        raise AuthenticationFailed(
            f"{self.address} refused user {user!r} (tried {what}{hint}): wrong key or "
            "password? Add the key to ssh-agent (ssh-add) or give ?key=PATH",
            location=spec.redacted,
        )

    def _keys(self, explicit: str, skipped: list[str]) -> Iterator[tuple[str, paramiko.PKey]]:
        """The keys to offer, labelled for the message; encrypted default keys are skipped."""
        if explicit:
            yield explicit, self._explicit_key(explicit)
            return
        if os.environ.get("SSH_AUTH_SOCK"):
            agent = paramiko.Agent()
            try:
                keys = agent.get_keys()
                for n, key in enumerate(keys, 1):
                    yield f"agent key {n}", key
            finally:
                agent.close()
        for name in DEFAULT_KEYS:
            path = Path(os.path.expanduser(f"~/.ssh/{name}"))
            if not path.is_file():
                continue
            try:
                loaded = paramiko.PKey.from_path(path)
            except (paramiko.PasswordRequiredException, TypeError):
                skipped.append(f"~/.ssh/{name}")
                continue
            except (paramiko.SSHException, OSError, ValueError) as exc:
                log.warning("%s: cannot use ~/.ssh/%s: %s", self.spec.redacted, name, exc)
                continue
            yield f"~/.ssh/{name}", loaded

    def _explicit_key(self, path_text: str) -> paramiko.PKey:
        path = Path(os.path.expanduser(path_text))
        try:
            # cryptography wants the passphrase as bytes (paramiko passes it through)
            secret = self.spec.password.encode() if self.spec.password else None
            return paramiko.PKey.from_path(path, cast(Any, secret))
        except (paramiko.PasswordRequiredException, TypeError):
            # cryptography says TypeError for an OpenSSH-format key that needs a passphrase
            raise AuthenticationFailed(
                f"the key {path} is protected by a passphrase: load it into ssh-agent "
                "(ssh-add) and leave out ?key=, or give the passphrase as the password",
                location=self.spec.redacted,
            ) from None
        except (paramiko.SSHException, ValueError) as exc:
            message = "wrong passphrase" if self.spec.password else str(exc)
            raise AuthenticationFailed(
                f"cannot use the key {path}: {message}", location=self.spec.redacted
            ) from None
        except OSError as exc:
            raise AuthenticationFailed(
                f"cannot read the key {path}: {exc.strerror or exc}", location=self.spec.redacted
            ) from None
