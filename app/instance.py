"""Single instance: one FileSync process per state directory.

Two engines on one index would fight over the same files, so the first process holds an
exclusive lock on ``<state>/filesync.lock`` (released by the OS even after a kill -9) and a
second one is told who holds it.
"""

from __future__ import annotations

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

    def acquire(self) -> InstanceLock:
        """Take the lock or raise :class:`AlreadyRunning` naming the holder's PID."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
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
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        """Release the lock (also released by the OS when the process dies)."""
        if self._file is not None:
            self._file.close()
            self._file = None

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
