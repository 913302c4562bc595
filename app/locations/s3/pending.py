"""Small uploads of one batch, sent in parallel and landed by the batch's end.

Over HTTP a small file's upload is mostly waiting for the server, so one at a time leaves the
link idle. Inside an engine batch a small file (read whole into memory, at most one part) is
handed to a few threads and ``write`` returns at once; the batch's end waits for every upload
and raises the first failure, so the engine treats that batch as not landed (as it does for a
ZIP archive's rewrite) and syncs its paths again. Memory stays bounded: at most
:data:`BUDGET` bytes wait or travel at a time; a writer beyond that waits for room.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

#: Uploads in flight at once.
THREADS = 8
#: Bytes of file content held by waiting and running uploads, at most.
BUDGET = 64 * 1024 * 1024


class PendingPuts:
    """The uploads a batch started and has not seen land yet."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._room = threading.Condition()
        self._held = 0
        self._futures: dict[str, Future[object]] = {}
        self._errors: list[BaseException] = []

    def submit(self, path: str, size: int, job: Callable[[], object]) -> None:
        """Run ``job`` (the upload of ``path``, ``size`` bytes) on a pool thread."""
        self.wait_for(path)  # a second write of one path goes after the first
        with self._room:
            self._room.wait_for(lambda: self._held == 0 or self._held + size <= BUDGET)
            self._held += size
            if self._pool is None:
                self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix=f"s3 put {self._name}")
            future = self._pool.submit(job)
            self._futures[path] = future
        future.add_done_callback(lambda f: self._done(f, size))

    def _done(self, future: Future[object], size: int) -> None:
        with self._room:
            self._held -= size
            exc = future.exception()
            if exc is not None:
                self._errors.append(exc)
            self._room.notify_all()

    def wait_for(self, path: str) -> None:
        """Wait until ``path``'s upload (if any) has finished; its error is kept for later."""
        with self._room:
            future = self._futures.get(path)
        if future is not None:
            future.exception()

    def settle(self) -> None:
        """Wait for every upload; errors are kept for :meth:`finish`."""
        with self._room:
            futures = list(self._futures.values())
        for future in futures:
            future.exception()

    def finish(self) -> None:
        """Wait for every upload, stop the threads and raise the first failure, if any."""
        self.settle()
        with self._room:
            pool, self._pool = self._pool, None
            errors, self._errors = self._errors, []
            self._futures.clear()
        if pool is not None:
            pool.shutdown(wait=True)
        if errors:
            raise errors[0]

    @property
    def busy(self) -> bool:
        """True while uploads were started and not yet finished."""
        with self._room:
            return bool(self._futures)
