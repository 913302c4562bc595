"""Per-location I/O threads, so one stuck location never holds up the others for long.

Each location gets one worker thread that runs that location's I/O: opening it, scans, stats,
writes, deletes. The engine thread hands it a call and waits at most ``deadline`` seconds for
the answer. A location that has not answered by then is *stalled*: the engine stops waiting,
parks that location's part of the work (:class:`~app.errors.LocationBusy`) and carries on with
the others. The call keeps running; when it ends, ``wake`` posts to the engine's one queue, and
the engine thread collects the result (:meth:`Worker.collect`), records it and catches the
location up. Workers only do location I/O and return results: only the engine thread touches
slots and the index. A socket timeout in the location itself stays the backstop that ends a call
stuck for good.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from typing import Any, TypeVar

from app.errors import LocationBusy

log = logging.getLogger(__name__)

T = TypeVar("T")
#: How long the engine waits for one location's answer once it is watching (seconds).
DEFAULT_DEADLINE = 1.0
#: An idle worker thread ends after this long; the next call starts a new one.
IDLE_EXIT = 2.0
Late = Callable[["Future[Any]"], None]


class Worker:
    """One location's I/O thread, as seen from the engine thread.

    The thread starts with the first call and ends after :data:`IDLE_EXIT` idle seconds, so an
    engine that is never stopped (``start(watch=False)``) leaves no thread behind for long.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None]
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._late: Future[Any] | None = None
        self._on_late: Late | None = None
        #: When the location stopped answering (monotonic), or None.
        self.stalled_since: float | None = None
        #: Called from the worker thread when an abandoned call ends (posts to the queue).
        self.wake: Callable[[], None] = lambda: None

    @property
    def stalled(self) -> bool:
        """True from a missed deadline until the engine thread collected the late result."""
        return self._late is not None

    def start(self, call: Callable[[], T]) -> Future[T]:
        """Begin ``call`` on the worker (to wait for several locations at once)."""
        if self._late is not None:
            raise self._busy()
        return self._submit(call)

    def finish(self, future: Future[T], deadline: float | None, on_late: Late | None = None) -> T:
        """The result of ``future``, or :class:`LocationBusy` once ``deadline`` has passed.

        ``on_late`` runs on the engine thread (in :meth:`collect`) with the future, once the
        abandoned call has ended, so its result (a file written after all) can be recorded.
        """
        wait([future], timeout=deadline)
        if future.done():
            return future.result()
        self._late = future
        self._on_late = on_late
        self.stalled_since = time.monotonic()
        future.add_done_callback(lambda _: self.wake())
        raise self._busy(deadline)

    def run(self, call: Callable[[], T], deadline: float | None, on_late: Late | None = None) -> T:
        """Run ``call`` on the worker and wait at most ``deadline`` seconds (None: no limit)."""
        return self.finish(self.start(call), deadline, on_late)

    def post(self, call: Callable[[], object]) -> None:
        """Queue ``call`` even while stalled, without waiting (ending a batch it began)."""
        self._submit(call).add_done_callback(_log_failure)

    def collect(self) -> bool:
        """Engine thread: if the abandoned call has ended, hand over its result; True if so."""
        late, on_late = self._late, self._on_late
        if late is None or not late.done():
            return False
        self._late = self._on_late = None
        self.stalled_since = None
        if on_late is not None:
            on_late(late)
        elif late.exception() is not None:
            log.info("%s: a late call failed: %s", self.name, late.exception())
        return True

    def shutdown(self, wait: bool = True) -> None:
        """End the thread once its calls are done (``wait``: block until then)."""
        with self._lock:
            thread = self._thread
            if thread is not None:
                self._jobs.put(None)
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            self._jobs.put((call, future))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name=f"filesync-io {self.name}", daemon=True
                )
                self._thread.start()
        return future

    def _serve(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE_EXIT)
            except queue.Empty:
                job = None
            if job is None:  # idle, or shut down: end unless a call came in meanwhile
                with self._lock:
                    if not self._jobs.empty():
                        continue
                    self._thread = None
                    return
            call, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except BaseException as exc:  # handed to the engine thread with the future
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _busy(self, deadline: float | None = None) -> LocationBusy:
        waited = time.monotonic() - (self.stalled_since or time.monotonic())
        took = f"{deadline:g} s" if deadline is not None and waited < 1 else f"{waited:.0f} s"
        return LocationBusy(
            f"not answering for {took} (server stalled or network slow?); its changes wait "
            "and are synced as soon as it answers",
            location=self.name,
        )


def _log_failure(future: Future[Any]) -> None:
    if future.exception() is not None:
        log.error("%s", future.exception())


class SlotIo:
    """The deadline the engine currently waits for locations, shared by syncer and applier.

    None while the engine has nothing else to do (the initial sync that :meth:`Engine.start`
    blocks on, ``--once``, :meth:`Engine.converged`): then every answer is waited for.
    """

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline

    @contextlib.contextmanager
    def patient(self) -> Iterator[None]:
        """Wait for every answer inside the block."""
        saved, self.deadline = self.deadline, None
        try:
            yield
        finally:
            self.deadline = saved
