"""The ONE queue every watcher feeds, and the debounce that turns it into batches.

Watchers call :meth:`ChangeQueue.put` from their own threads; the engine thread is the only
consumer. A batch closes when no new item arrived for ``debounce`` seconds (a burst of a
thousand files becomes one batch), or after ``max_wait`` so a never-ending stream of events
still makes progress. Control commands (add a location, sync now) travel the same queue, so
they are serialised with the changes and never race with a batch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from app.watch.change import Change

Command = Callable[[], None]
Item = Change | Command


class ChangeQueue:
    """A thread-safe FIFO with batch collection and an "idle" signal for tests and the UI."""

    def __init__(self, debounce: float = 0.05, max_wait: float = 0.5, max_items: int = 20000):
        self.debounce = debounce
        self.max_wait = max_wait
        self.max_items = max_items
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        self._idle_lock = threading.Lock()

    def put(self, item: Item) -> None:
        """Add a change or a command (any thread)."""
        with self._idle_lock:  # so "idle" is never set between the clear and the put
            self._idle.clear()
            self._queue.put(item)

    def qsize(self) -> int:
        """Approximate number of waiting items."""
        return self._queue.qsize()

    def next_batch(self, timeout: float | None) -> list[Item]:
        """Block up to ``timeout`` for a first item, then gather until quiet; [] on timeout."""
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        batch = [first]
        started = time.monotonic()
        while len(batch) < self.max_items:
            remaining = self.max_wait - (time.monotonic() - started)
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=min(self.debounce, remaining)))
            except queue.Empty:
                break
        return batch

    def mark_idle_if_empty(self) -> None:
        """Called by the consumer after a batch: signals idleness if nothing is waiting."""
        with self._idle_lock:
            if self._queue.empty():
                self._idle.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the consumer has processed everything queued so far."""
        return self._idle.wait(timeout)
