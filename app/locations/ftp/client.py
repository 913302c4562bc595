"""One FTP/FTPS control connection, shared by threads, that heals itself.

The engine thread and the poller thread both call into an FTP location, and FTP allows one
command at a time per control connection, so every use goes through :meth:`FtpClient.session`
under one lock (:class:`~app.locations.remote.session.HeldSession`, shared with SFTP, holds it,
retries once and pauses after a failed connect). This module says what FTP's troubles mean:

* a connection that breaks (reset, EOF, timeout, ``421``/``426``) is dropped; the call is
  retried once on a fresh connection, because servers close idle control connections and that
  must not look like an outage;
* a failed (re)connect starts the shared backoff (:mod:`app.locations.remote.backoff`). While
  it runs, calls raise at once instead of hammering the server;
* ``530`` at login is :class:`AuthenticationFailed`; any other failure is
  :class:`LocationUnavailable` naming ``host:port``.

The password never leaves this module: server replies are scrubbed before they reach a
message, and names are always ``spec.redacted``.
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import socket
import ssl
from collections.abc import Callable

from app.errors import AuthenticationFailed, LocationUnavailable
from app.locations.remote.session import HeldSession
from app.locations.spec import LocationSpec

log = logging.getLogger(__name__)

#: Reply codes that mean "this connection is finished, make a new one".
_BROKEN_CODES = ("421", "426")
#: What a dying connection raises from inside ftplib.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes socket.timeout, ConnectionResetError, ssl.SSLError
    EOFError,
    ftplib.error_reply,
    ftplib.error_proto,
)
#: Everything a conversation with a server can raise, refusals included.
FTP_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, ftplib.Error)


def reply_code(exc: BaseException) -> str:
    """Return the three-digit FTP reply code an ftplib error carries (``""`` if none)."""
    text = str(exc)
    return text[:3] if text[:3].isdigit() else ""


def is_not_found(exc: BaseException) -> bool:
    """True for a ``550`` reply: no such file, or not a plain file (RFC 959)."""
    return isinstance(exc, ftplib.error_perm) and reply_code(exc) == "550"


class FtpClient(HeldSession[ftplib.FTP]):
    """A lazily (re)connected FTP or FTPS session for one location.

    ``features`` holds the FEAT lines of the current connection, upper-cased keys (``MLST``,
    ``MFMT``, ``MDTM``, ``UTF8`` …) with their parameters. ``commands`` counts the control
    commands sent, so benchmarks and tests can see what a scan costs.
    """

    what = "FTP connection"

    def __init__(self, spec: LocationSpec, timeout: float) -> None:
        super().__init__(spec, timeout, log)
        self.features: dict[str, str] = {}
        self.commands = 0
        self.on_connect: Callable[[ftplib.FTP], None] | None = None
        self._warned_unverified = False
        #: Send short command sequences without waiting for each reply (``pipeline=no`` in the
        #: URL turns it off; a timeout while pipelining turns it off for good).
        self.pipelining = spec.option("pipeline", "yes").lower() not in ("no", "false", "0", "off")

    def pipeline(self, ftp: ftplib.FTP, commands: list[str]) -> list[str | ftplib.Error]:
        """Send ``commands`` at once; return each reply, or the refusal, in order.

        One round trip instead of one per command: over a WAN that halves the time of a small
        upload. Some servers and routers lose pipelined commands, so a timeout while waiting
        turns pipelining off for this client before it propagates (the caller's retry, on a
        fresh connection, then goes one command at a time). A reply that means the connection
        is finished (421) is raised, not returned.
        """
        replies: list[str | ftplib.Error] = []
        if not self.pipelining:
            for command in commands:
                try:
                    replies.append(ftp.sendcmd(command))
                except ftplib.Error as exc:
                    if self.is_broken(exc):
                        raise
                    replies.append(exc)
            return replies
        assert ftp.sock is not None
        ftp.sock.sendall("".join(f"{c}\r\n" for c in commands).encode(ftp.encoding))
        self.commands += len(commands)
        for _ in commands:
            try:
                replies.append(ftp.getresp())
            except ftplib.Error as exc:
                if self.is_broken(exc):
                    raise
                replies.append(exc)
            except TimeoutError:
                self.pipelining = False
                log.warning("%s: no reply to pipelined commands; sending one at a time from now",
                            self.spec.redacted)  # fmt: skip
                raise
        return replies

    def is_broken(self, exc: BaseException) -> bool:
        """True if ``exc`` means the connection is unusable (not a refusal of one command)."""
        if isinstance(exc, ftplib.error_temp):
            return reply_code(exc) in _BROKEN_CODES
        return isinstance(exc, CONNECTION_ERRORS)

    def is_refusal(self, exc: BaseException) -> bool:
        """True for a ``5xx`` reply: the server refused this one command."""
        return isinstance(exc, ftplib.error_perm)

    def is_not_found(self, exc: BaseException) -> bool:
        """True for a ``550`` reply (see :func:`is_not_found`)."""
        return is_not_found(exc)

    def _discard(self, conn: ftplib.FTP) -> None:
        conn.close()

    def _hang_up(self, conn: ftplib.FTP) -> None:
        try:
            conn.quit()
        except FTP_ERRORS:
            pass
        finally:
            conn.close()

    def _tls_context(self) -> ssl.SSLContext:
        if self.spec.option("verify", "yes").lower() in ("no", "false", "0", "off"):
            if not self._warned_unverified:
                self._warned_unverified = True
                log.warning(
                    "%s: verify=no: the server's certificate is NOT checked; anyone between you "
                    "and the server can read and change the data", self.spec.redacted)  # fmt: skip
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        cafile = self.spec.option("cafile") or None
        try:
            return ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise LocationUnavailable(
                f"cannot read cafile {cafile}: {exc}", location=self.spec.redacted
            ) from None

    def _login(self) -> ftplib.FTP:
        spec = self.spec
        ftp: ftplib.FTP
        if spec.tls:
            ftp = _CountingFTP_TLS(self, context=self._tls_context(), timeout=self.timeout)
        else:
            ftp = _CountingFTP(self, timeout=self.timeout)
        try:
            try:
                ftp.connect(spec.host, spec.port, timeout=self.timeout)
            except OSError as exc:
                raise LocationUnavailable(
                    f"cannot connect to {self.address}: {exc.strerror or exc}",
                    location=spec.redacted,
                ) from None
            user = spec.user or "anonymous"
            password = spec.password if spec.user else (spec.password or "anonymous@")
            try:
                ftp.login(user, password)
            except ftplib.error_perm as exc:
                if reply_code(exc) in ("530", "430"):
                    raise AuthenticationFailed(
                        f"{self.address} refused user {user!r} (wrong user name or password?)",
                        location=spec.redacted,
                    ) from None
                raise
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            self.features = self._feat(ftp)
            if "UTF8" in self.features:
                with contextlib.suppress(ftplib.error_perm, ftplib.error_temp):
                    ftp.sendcmd("OPTS UTF8 ON")
            ftp.voidcmd("TYPE I")
            ftp.set_pasv(True)
            if self.on_connect is not None:
                self.on_connect(ftp)
        except ssl.SSLCertVerificationError as exc:
            ftp.close()
            raise LocationUnavailable(
                f"{self.address}: the server's certificate is not trusted ({exc.verify_message});"
                " add cafile=PATH to trust it, or verify=no to skip the check",
                location=spec.redacted,
            ) from None
        except LocationUnavailable:
            ftp.close()
            raise
        except FTP_ERRORS as exc:
            ftp.close()
            raise self.unavailable("login", exc) from None
        except BaseException:
            ftp.close()
            raise
        log.debug("%s: connected, features %s", spec.redacted, sorted(self.features))
        return ftp

    @staticmethod
    def _feat(ftp: ftplib.FTP) -> dict[str, str]:
        """Return FEAT as {NAME: params}; a server without FEAT (RFC 959 only) has none."""
        try:
            reply = ftp.sendcmd("FEAT")
        except ftplib.error_perm:
            return {}
        features: dict[str, str] = {}
        for line in reply.splitlines()[1:-1]:
            name, _, params = line.strip().partition(" ")
            if name:
                features[name.upper()] = params
        return features


class _CountingFTP(ftplib.FTP):
    """ftplib.FTP that counts commands for its client (requests per poll, in benches)."""

    def __init__(self, client: FtpClient, timeout: float) -> None:
        super().__init__(timeout=timeout, encoding="utf-8")
        self._client = client

    def putcmd(self, line: str) -> None:
        self._client.commands += 1
        super().putcmd(line)


class _CountingFTP_TLS(ftplib.FTP_TLS):  # noqa: N801 - mirrors ftplib's own class name
    """ftplib.FTP_TLS that counts commands and resumes the TLS session on data connections.

    vsftpd (``require_ssl_reuse=YES``, its default) and others refuse a data connection that
    does not resume the control connection's TLS session, so a transfer proves it comes from
    the same client; plain ftplib starts a new session each time.
    """

    def __init__(self, client: FtpClient, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(context=context, timeout=timeout, encoding="utf-8")
        self._client = client

    def putcmd(self, line: str) -> None:
        self._client.commands += 1
        super().putcmd(line)

    def ntransfercmd(
        self, cmd: str, rest: int | str | None = None
    ) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            control = self.sock
            session = control.session if isinstance(control, ssl.SSLSocket) else None
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


__all__ = ["CONNECTION_ERRORS", "FTP_ERRORS", "FtpClient", "is_not_found", "reply_code"]
