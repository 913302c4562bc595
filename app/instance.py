"""Single instance: one FileSync process per state directory.

Two engines on one index would fight over the same files, so the first process holds an
exclusive lock on ``<state>/filesync.lock`` (released by the OS even after a kill -9) and a
second one is told who holds it.

A lock on a file dies with the file: if the state folder is deleted while FileSync runs, a new
``filesync.lock`` is a different file and its lock is free. So on Linux the process also binds
an abstract unix socket named after the state folder's real path. That name lives in the kernel,
not in the folder, survives the folder being deleted and recreated, and is released by the OS
when the process dies, like the file lock.

Every start takes this lock, so it avoids two costly imports: the socket is the C type under
:mod:`socket` (whose wrapper builds its enums at import) and the name's digest comes from
CPython's built-in sha256 (:mod:`hashlib` loads OpenSSL); 4 ms of a 0.1 s restart.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import importlib
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import IO

from app.errors import AlreadyRunning


class InstanceLock:
    """An exclusive, non-blocking lock on a file in the state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "filesync.lock"
        self._file: IO[str] | None = None
        self._socket: _socket.socket | None = None

    def acquire(self) -> InstanceLock:
        """Take the lock or raise :class:`AlreadyRunning` naming the holder's PID."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._socket = _bind_state_socket(self.path.parent)
        try:
            return self._lock_file()
        except BaseException:
            self.release()
            raise

    def _lock_file(self) -> InstanceLock:
        f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the process's life
        try:
            _lock(f)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise AlreadyRunning(
                f"FileSync is already running (pid {holder}) with state in {self.path.parent}"
            ) from None
        # The PID only makes a second instance's message nicer; the lock is what counts, so a
        # full disk here is no error (written unbuffered: nothing is left to fail at close).
        with contextlib.suppress(OSError):
            os.ftruncate(f.fileno(), 0)
            os.lseek(f.fileno(), 0, os.SEEK_SET)
            os.write(f.fileno(), str(os.getpid()).encode())
        self._file = f
        return self

    def release(self) -> None:
        """Release the lock (also released by the OS when the process dies)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> InstanceLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _lock(f: IO[str]) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows builds only
        import msvcrt

        msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _socket_name(state_dir: Path) -> bytes:
    """The abstract socket name for a state folder (a digest: names are limited to 107 bytes)."""
    real = os.fsencode(os.path.realpath(state_dir))
    return b"\0filesync-state-" + _sha256_hex(real)[:40].encode()


def _sha256_hex(data: bytes) -> str:
    """``hashlib.sha256(data).hexdigest()`` without loading OpenSSL where CPython has its own
    sha256 (``_sha2`` from 3.12, ``_sha256`` before): the same digest, 2 ms sooner."""
    for name in ("_sha2", "_sha256"):
        with contextlib.suppress(ImportError):
            return str(importlib.import_module(name).sha256(data).hexdigest())
    import hashlib  # pragma: no cover - a build without CPython's own sha256

    return hashlib.sha256(data).hexdigest()


def _bind_state_socket(state_dir: Path) -> _socket.socket | None:
    """Bind the state folder's abstract socket; None where there are none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    name = _socket_name(state_dir)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.bind(name)
        sock.listen(1)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            return None  # no abstract sockets here (a sandbox): the file lock still holds
        raise AlreadyRunning(
            f"FileSync is already running (pid {_holder_pid(name)}) with state in {state_dir}"
        ) from None
    return sock


def _holder_pid(name: bytes) -> str:
    """The PID of the process listening on ``name``, from the kernel's peer credentials."""
    import socket
    import struct

    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        s.connect(name)
        creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, _uid, _gid = struct.unpack("3i", creds)
        return str(pid)
    return "unknown"
