"""The only door from the GUI to the engine: plain calls in, plain data out.

The engine runs in its own threads. Its slow calls (``start`` with the initial sync, adding a
location with its initial sync, ``stop``) run here in one worker thread, ``filesync-ui-worker``,
one at a time and in order, so the Tk thread never waits on the network or the disk. What
happened comes back as plain values the Tk thread drains with :meth:`SyncFacade.take_events`:
:class:`~app.engine.status.Activity` from the engine's listener, and :class:`FacadeEvent` for
the outcome of the facade's own jobs. The GUI never holds an engine or location object.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from app.config import Config
from app.engine.status import Activity, EngineStatus
from app.errors import FileSyncError
from app.locations import LocationOptions, LocationSpec, open_location
from app.locations.form.fields import ConnectionReport, FollowUp
from app.locations.registry import kind_of

if TYPE_CHECKING:
    from app.locations.base import Location

log = logging.getLogger(__name__)


class EngineLike(Protocol):
    """The part of :class:`app.engine.engine.Engine` the desktop app uses."""

    def start(self) -> None: ...
    def request_stop(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...
    def status(self) -> EngineStatus: ...
    def add_location(self, loc: Location) -> None: ...
    def remove_location(self, key: str) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def sync_now(self) -> None: ...
    def add_listener(self, callback: Callable[[Activity], None]) -> None: ...
    def locations(self) -> tuple[Location, ...]: ...


@dataclass(frozen=True)
class FacadeEvent:
    """The outcome of a job: ``kind`` is started, added, removed, failed; ``text`` says more."""

    kind: str
    text: str
    key: str = ""


def engine_for_config(config: Config, state_dir: Path) -> EngineLike:
    """The real engine for ``config``, with its state index in ``state_dir``."""
    from app.engine.builder import build_engine
    from app.engine.settings import EngineSettings

    settings = EngineSettings(ignore=config.ignore)
    engine: EngineLike = build_engine(
        config.locations, state_dir, settings, config.location_options()
    )
    return engine


class SyncFacade:
    """Runs an engine for the GUI; every method returns at once and is safe from the Tk thread."""

    def __init__(self, engine: EngineLike, options: LocationOptions | None = None) -> None:
        self._engine = engine
        self._options = options or LocationOptions()
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._events: queue.SimpleQueue[Activity | FacadeEvent] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._started = False
        engine.add_listener(self._events.put)

    def start(self) -> None:
        """Start the worker and, in it, the engine (its initial sync may take a while)."""
        self._worker = threading.Thread(target=self._work, name="filesync-ui-worker")
        self._worker.start()
        self._submit(self._start_engine, "starting the engine")

    def _start_engine(self) -> None:
        self._engine.start()
        self._started = True
        self._events.put(FacadeEvent("started", "FileSync is running"))

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the engine (index committed) after queued jobs, and join the worker.

        A sync in progress (the initial one may take minutes) is asked to end at its next
        file first, so Quit never waits for it; what it synced so far is recorded.
        """
        if self._worker is None:
            return
        self._engine.request_stop()
        self._submit(self._stop_engine, "stopping the engine")
        self._jobs.put(None)
        self._worker.join(timeout)
        if self._worker.is_alive():
            log.error("the engine did not stop within %.0f s", timeout)
        self._worker = None

    def _stop_engine(self) -> None:
        try:
            if self._started:
                self._engine.stop()
                self._started = False
        finally:
            self._engine.close()

    def status(self) -> EngineStatus:
        """The engine's current snapshot (cheap and thread-safe)."""
        return self._engine.status()

    def add_location(self, spec: LocationSpec) -> None:
        """Add a location to the running engine; its initial sync runs in the worker."""

        def job() -> None:
            self._engine.add_location(open_location(spec, self._options))
            self._events.put(FacadeEvent("added", f"Added {spec.redacted}", spec.key))

        self._submit(job, f"adding {spec.redacted}")

    def remove_location(self, key: str) -> None:
        """Stop syncing a location (its files stay where they are)."""

        def job() -> None:
            self._engine.remove_location(key)
            self._events.put(FacadeEvent("removed", f"Removed {key}", key))

        self._submit(job, f"removing {key}")

    def pause(self) -> None:
        """Pause syncing: changes are still noticed and synced on resume."""
        self._engine.pause()

    def resume(self) -> None:
        """Resume syncing."""
        self._engine.resume()

    def sync_now(self) -> None:
        """Rescan every location now instead of waiting for the next poll."""
        self._submit(self._engine.sync_now, "syncing now")

    def test_connection(
        self, spec: LocationSpec, reply: Callable[[ConnectionReport], None]
    ) -> None:
        """Run the spec's kind's "Test connection" in a short-lived thread; ``reply`` from it.

        A kind without a test answers that there is nothing to test.
        """
        test = kind_of(spec).test
        if test is None:
            reply(ConnectionReport(False, "this kind of location has no connection to test"))
            return
        options = LocationOptions(connect_timeout=10.0)
        self._check(partial(test, spec, options), spec.redacted, reply)

    def follow_up(self, action: FollowUp, reply: Callable[[ConnectionReport], None]) -> None:
        """Run a test's follow-up (``Trust this host``) in a short-lived thread, like the test."""
        self._check(action.run, action.label, reply)

    def _check(
        self,
        check: Callable[[], ConnectionReport],
        what: str,
        reply: Callable[[ConnectionReport], None],
    ) -> None:
        def run() -> None:
            try:
                reply(check())
            except FileSyncError as exc:
                reply(ConnectionReport(False, exc.message))
            except Exception as exc:  # any library error becomes a message for the user
                log.warning("testing %s failed", what, exc_info=True)
                reply(ConnectionReport(False, f"{type(exc).__name__}: {exc}"))

        threading.Thread(target=run, name="filesync-test-connection", daemon=True).start()

    def add_listener(self, callback: Callable[[Activity], None]) -> None:
        """Also call ``callback`` (from the engine thread) for every activity record."""
        self._engine.add_listener(callback)

    def locations(self) -> tuple[Location, ...]:
        """The engine's locations (the dashboard lists and restores versions through them)."""
        return self._engine.locations()

    def take_events(self) -> list[Activity | FacadeEvent]:
        """Everything that happened since the last call, oldest first (Tk thread)."""
        out: list[Activity | FacadeEvent] = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def _submit(self, job: Callable[[], None], what: str) -> None:
        def guarded() -> None:
            try:
                job()
            except FileSyncError as exc:
                log.warning("%s failed: %s", what, exc)
                self._events.put(FacadeEvent("failed", f"{what.capitalize()} failed: {exc}"))
            except Exception as exc:
                log.exception("%s failed", what)
                self._events.put(FacadeEvent("failed", f"{what.capitalize()} failed: {exc}"))

        self._jobs.put(guarded)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job()
