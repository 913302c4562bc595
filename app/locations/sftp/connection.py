"""One SSH connection with its SFTP session per location, shared by threads, that heals itself.

The engine thread and the poller both call into an SFTP location; every use goes through
:meth:`SftpConnection.session` under one lock, so requests of two threads never interleave
(:class:`~app.locations.remote.session.HeldSession`, shared with FTP, holds it, retries once
and pauses after a failed connect). Trouble is translated here into FileSync errors:

* a connection that breaks (EOF, reset, a timeout) is dropped and the call retried once on a
  fresh one, because servers and NAT boxes drop idle connections; keepalives every 15 s make
  that rarer, and every request has a timeout;
* a failed (re)connect starts the shared backoff (:mod:`app.locations.remote.backoff`);
* the host key is checked against ``known_hosts`` before anything is sent
  (:mod:`app.locations.sftp.hostkeys`); a refused login is :class:`AuthenticationFailed`;
  anything else is :class:`LocationUnavailable` naming ``host:port``.

Authentication, in order: the key given with ``?key=PATH`` (its passphrase, if any, is the
location's password); otherwise the SSH agent's keys, then ``~/.ssh/id_ed25519``, ``id_ecdsa``
and ``id_rsa``, then the password if one was given. Passwords and passphrases never appear in
a message or the log.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import paramiko

from app.errors import AuthenticationFailed, FileSyncError, LocationUnavailable
from app.locations.remote.session import HeldSession
from app.locations.sftp import hostkeys, protocol
from app.locations.sftp.protocol import SFTP_ERRORS, StatusError
from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)

KEEPALIVE_S = 15
DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
#: A large SSH window: a transfer is not held up waiting for window adjustments.
WINDOW_BYTES = 16 * 1024 * 1024


class CountingSftp(paramiko.SFTPClient):
    """paramiko's client, counting the requests it sends (requests per poll, in benches).

    ``transport`` is its SSH connection: a session is usable while that is active.
    """

    def __init__(self, sock: paramiko.Channel) -> None:
        super().__init__(sock)
        self.requests = 0
        self.transport = sock.get_transport()

    def _async_request(self, fileobj: object, t: int, *args: object) -> int:
        self.requests += 1
        return cast(int, cast(Any, super())._async_request(fileobj, t, *args))


class SftpConnection(HeldSession[CountingSftp]):
    """A lazily (re)connected SSH + SFTP session for one location.

    ``home`` is the login's home folder (what ``~`` means), known once connected.
    """

    what = "SFTP session"
    failures = SFTP_ERRORS

    def __init__(self, spec: LocationSpec, timeout: float) -> None:
        super().__init__(spec, timeout, log)
        self.home = ""
        self._requests_before = 0

    @property
    def requests(self) -> int:
        """SFTP requests sent so far, over every connection this location made."""
        current = self._conn.requests if self._conn is not None else 0
        return self._requests_before + current

    def is_broken(self, exc: BaseException) -> bool:
        """True if ``exc`` means the connection is unusable (not a refusal of one request)."""
        if isinstance(exc, FileSyncError | StatusError):
            return False
        if isinstance(exc, paramiko.SSHException | EOFError | TimeoutError | ConnectionError):
            return True
        transport = self._conn.transport if self._conn is not None else None
        return isinstance(exc, OSError) and (transport is None or not transport.is_active())

    def is_refusal(self, exc: BaseException) -> bool:
        """True for a status reply: the server refused this one request."""
        return isinstance(exc, StatusError)

    def is_not_found(self, exc: BaseException) -> bool:
        """True for "no such file" (see :func:`app.locations.sftp.protocol.is_not_found`)."""
        return protocol.is_not_found(exc)

    def _usable(self, conn: CountingSftp) -> bool:
        return conn.transport.is_active()

    def _discard(self, conn: CountingSftp) -> None:
        self._requests_before += conn.requests
        conn.transport.close()

    def _login(self) -> CountingSftp:
        spec = self.spec
        known = hostkeys.load_known(spec)
        try:
            sock = socket.create_connection((spec.host, spec.port), timeout=self.timeout)
        except OSError as exc:
            raise LocationUnavailable(
                f"cannot connect to {self.address}: {exc.strerror or exc}", location=spec.redacted
            ) from None
        # Requests go out in one write when a reply is awaited (wire.py), so nothing gains
        # from Nagle's delay, which held a request behind the last one's acknowledgement
        # (40 ms per file of a download, two thirds of 20 x 10 MiB).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
            sftp = CountingSftp.from_transport(transport)
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
