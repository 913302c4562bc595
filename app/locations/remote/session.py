"""One connection to a server per location, held by one thread at a time, that heals itself.

The engine thread and the poller both call into a server location, and a control connection
(FTP) or a session (SFTP) carries one exchange at a time, so every use goes through
:meth:`HeldSession.session` under one lock. What the server kinds share lives here:

* the lock refuses re-entry by the thread that holds it (a ``stat`` while streaming a
  download): waiting would deadlock;
* the connection is made on first use and after a drop;
* an operation that breaks the connection (:meth:`HeldSession.is_broken`) is retried once on a
  fresh connection, because servers and NAT boxes close idle connections and that must not look
  like an outage; a second break is :class:`LocationUnavailable` naming ``host:port``;
* a failed (re)connect starts the short pause of :mod:`app.locations.remote.backoff`.

Each protocol subclasses it and says how to log in, which errors mean "the connection is
finished" and how to close; how a refusal of one command maps to a FileSync error stays with
the protocol's callers. The password never reaches a message: :meth:`HeldSession.scrub`.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from app.errors import FileSyncError, FileVanished, LocationUnavailable
from app.locations.remote.backoff import Backoff
from app.locations.spec import LocationSpec

C = TypeVar("C")
T = TypeVar("T")


class HeldSession(abc.ABC, Generic[C]):
    """A lazily (re)connected connection of type ``C`` for one location, shared by threads.

    A subclass implements :meth:`_login`, :meth:`is_broken`, :meth:`is_refusal`,
    :meth:`is_not_found` and :meth:`_discard`, and may
    override :meth:`_usable` (is a kept connection still alive?) and :meth:`_hang_up` (a polite
    goodbye). ``what`` names the connection in the re-entry error (``"FTP connection"``).
    """

    what = "connection"
    #: What a request can raise that :meth:`start_download` words as a FileSync error.
    failures: tuple[type[BaseException], ...] = (Exception,)

    def __init__(self, spec: LocationSpec, timeout: float, log: logging.Logger) -> None:
        self.spec = spec
        self.timeout = timeout
        self._log = log
        self._conn: C | None = None
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._backoff = Backoff()

    @property
    def address(self) -> str:
        """``host:port`` for messages (IPv6 hosts in brackets)."""
        host = f"[{self.spec.host}]" if ":" in self.spec.host else self.spec.host
        return f"{host}:{self.spec.port}"

    def scrub(self, text: str) -> str:
        """Return ``text`` with the password replaced by ``***`` (servers may echo input)."""
        password = self.spec.password
        return text.replace(password, "***") if password else text

    @contextlib.contextmanager
    def session(self) -> Iterator[C]:
        """Hold the connection (connecting first if needed) for one exchange.

        Raises :class:`RuntimeError` if the thread holding it re-enters (a ``stat`` while
        streaming a download): a protocol cannot interleave it, and waiting would deadlock.
        """
        me = threading.get_ident()
        if self._owner == me:
            raise RuntimeError(f"{self.spec.redacted}: {self.what} re-entered by its holder")
        with self._lock:
            self._owner = me
            try:
                yield self._connected()
            finally:
                self._owner = None

    def run(self, what: str, action: Callable[[C], T]) -> T:
        """Run ``action`` on the connection; on a broken connection retry once, fresh.

        ``what`` names the operation in messages. An error that is not :meth:`is_broken` (the
        server refused this one command) propagates unchanged: the caller knows what "no such
        file" means for it.
        """
        with self.session() as first:
            return self.retry_held(what, first, action)

    def retry_held(self, what: str, conn: C, action: Callable[[C], T]) -> T:
        """Inside a held :meth:`session`: :meth:`run`'s one retry, starting on ``conn``."""
        for attempt in (1, 2):
            try:
                return action(conn)
            except Exception as exc:
                if not self.is_broken(exc):
                    raise
                self.drop(exc)
                if attempt == 2:
                    raise self.unavailable(what, exc) from None
                detail = self.scrub(str(exc)) or type(exc).__name__
                self._log.info("%s: connection lost during %s (%s); reconnecting",
                               self.spec.redacted, what, detail)  # fmt: skip
            conn = self._connected()
        raise AssertionError("unreachable")  # pragma: no cover

    def start_download(self, path: str, conn: C, start: Callable[[C], T]) -> T:
        """Inside a held :meth:`session`: start reading ``path`` (with :meth:`retry_held`).

        A refusal is :class:`FileVanished` if the file is not there, else
        :class:`LocationUnavailable`, as is any other failure among :attr:`failures`.
        """
        what = f"download of {path}"
        try:
            return self.retry_held(what, conn, start)
        except FileSyncError:
            raise
        except self.failures as exc:
            name = self.spec.redacted
            if not self.is_refusal(exc):
                raise self.unavailable(what, exc) from None
            if self.is_not_found(exc):
                raise FileVanished(
                    "the file is gone from the server", location=name, path=path
                ) from None
            raise LocationUnavailable(
                f"download refused: {self.scrub(str(exc))}", location=name, path=path
            ) from None

    def unavailable(self, what: str, exc: BaseException) -> LocationUnavailable:
        """Build the error for a failure the user can only wait out or fix on the server."""
        detail = self.scrub(str(exc)) or type(exc).__name__
        return LocationUnavailable(
            f"{what} failed on {self.address}: {detail}", location=self.spec.redacted
        )

    def drop(self, reason: BaseException | None = None) -> None:
        """Forget the current connection without talking to the server (it may be dead)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            if reason is not None:
                self._log.debug("%s: dropping connection: %r", self.spec.redacted, reason)
            self._discard(conn)

    def reconnect(self) -> C:
        """Inside a held :meth:`session`: drop the connection and make a new one (or raise)."""
        self.drop()
        return self._connected()

    def close(self) -> None:
        """Say goodbye and close the connection. Safe to call twice."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                self._hang_up(conn)

    @abc.abstractmethod
    def is_broken(self, exc: BaseException) -> bool:
        """True if ``exc`` means the connection is unusable (not a refusal of one command)."""

    @abc.abstractmethod
    def is_refusal(self, exc: BaseException) -> bool:
        """True if the server refused this one command (the connection is fine)."""

    @abc.abstractmethod
    def is_not_found(self, exc: BaseException) -> bool:
        """True for a refusal that means "no such file"."""

    @abc.abstractmethod
    def _login(self) -> C:
        """Connect and log in; raise a FileSync error (:class:`LocationUnavailable` …)."""

    @abc.abstractmethod
    def _discard(self, conn: C) -> None:
        """Close ``conn`` without talking to the server."""

    def _hang_up(self, conn: C) -> None:
        """Close ``conn`` at the user's request (politely, if the protocol has a goodbye)."""
        self._discard(conn)

    def _usable(self, conn: C) -> bool:
        """True if the kept ``conn`` may be used without connecting again."""
        return True

    def _connected(self) -> C:
        if self._conn is not None and self._usable(self._conn):
            return self._conn
        self.drop()
        self._backoff.check()
        try:
            self._conn = self._login()
        except LocationUnavailable as exc:
            self._backoff.failed(exc)
            raise
        self._backoff.succeeded()
        return self._conn


__all__ = ["HeldSession"]
