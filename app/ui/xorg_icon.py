"""Fixes to pystray's plain X (XEmbed) tray icon, as a subclass made at run time.

Facts found with trayer under Xvfb, each fixed here:

* The icon window never selects ``ButtonPress``, so clicks never arrive: it does now, and a
  left click runs the default menu item (the status window).
* Every picture change sends a new dock request, and a dock request can be lost (a tray
  that is still starting, a panel restarted at login): roughly one start in six left the
  icon undocked. Here the loop thread re-requests docking only while the window is not
  embedded, at most every :data:`DOCK_RETRY` seconds, checked once a second.
* pystray marks the icon ready before recording its loop thread, so the setup thread's
  first call can fail; the thread is recorded first.
* The title becomes WM_NAME, which python-xlib encodes as Latin-1 and raises on anything
  else; other characters are replaced.
* ``__del__`` closes the display at garbage collection and raises if the server is gone;
  :meth:`release` closes it when the loop has ended and ``__del__`` stays quiet.
* pystray runs a change made from another thread (show, hide, picture, title, stop) by
  sending an X message to its own window on the shared X connection, then waits for the loop
  to answer. python-xlib loses a wake-up when two threads use one connection: a thread that
  only sent returns without waking a thread that waits for a reply, so the loop thread
  waited forever in its next request (seen under load: the setup thread and then
  ``Icon.stop`` waited for it forever). Here only the loop thread touches the connection: other
  threads queue the change and wake the loop through a pipe it selects on, and stop waiting
  once the loop has ended, so a change after the stop cannot hang either.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import queue
import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

#: Seconds between dock requests while the icon is not embedded.
DOCK_RETRY = 2.0
#: How often the loop thread wakes up to check that it is docked.
DOCK_CHECK = 1.0
#: How often a thread waiting for the loop checks that the loop still runs.
LOOP_CHECK = 0.5


class _Call:
    """A change another thread asked the loop thread to make, and how it went."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.action()
        except BaseException as exc:  # re-raised in the thread that asked
            self.error = exc
        finally:
            self.done.set()


def latin1(text: str) -> str:
    """``text`` with dashes made ASCII and other non-Latin-1 characters replaced by ``?``."""
    text = text.replace("\u2014", "-").replace("\u2013", "-").replace("\u2026", "...")
    return text.encode("latin-1", "replace").decode("latin-1")


def fixed_xorg_icon(base: Any) -> Any:
    """Subclass pystray's ``_xorg.Icon`` (``base``) with the fixes in the module doc."""
    xlib_x: Any = importlib.import_module("Xlib.X")

    class FixedXorgIcon(base):  # type: ignore[misc]
        """pystray's X icon that hears clicks and keeps itself docked."""

        title = property(lambda self: latin1(base.title.fget(self)), base.title.fset)

        def _create_window(self) -> Any:
            self._dock_requested = 0.0
            window = super()._create_window()
            window.change_attributes(
                event_mask=xlib_x.ExposureMask | xlib_x.StructureNotifyMask | xlib_x.ButtonPressMask
            )
            return window

        def _rewrite_implementation(self, *methods: Callable[[], None]) -> None:
            # Called once by pystray's __init__ with the methods that must run in the loop.
            self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
            self._loop_ended = threading.Event()
            self._wake_read, self._wake_write = os.pipe()
            os.set_blocking(self._wake_read, False)
            os.set_blocking(self._wake_write, False)
            for method in methods:
                setattr(self, method.__name__, self._in_loop(method))

        def _in_loop(self, method: Callable[[], None]) -> Callable[[], None]:
            @functools.wraps(method)
            def call() -> None:
                loop: threading.Thread | None = getattr(self, "_thread", None)
                if loop is threading.current_thread():
                    method()
                    return
                if loop is None:
                    raise RuntimeError("the tray icon's loop has not started")
                if self._loop_ended.is_set():
                    return  # the icon is gone: nothing left to change
                pending = _Call(method)
                self._calls.put(pending)
                with contextlib.suppress(BlockingIOError):  # full: the loop wakes anyway
                    os.write(self._wake_write, b"!")
                while not pending.done.wait(LOOP_CHECK):
                    if self._loop_ended.is_set() or not loop.is_alive():
                        return  # the icon is gone: nothing left to change
                if pending.error is not None:
                    raise pending.error

            return call

        def _run_calls(self) -> None:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_read, 4096)
            while True:
                try:
                    pending = self._calls.get_nowait()
                except queue.Empty:
                    return
                pending.run()

        def _run(self) -> None:
            self._thread = threading.current_thread()
            try:
                super()._run()
            finally:
                self._loop_ended.set()

        def _embedded(self) -> bool:
            parent = self._window.query_tree().parent
            return bool(parent.id != self._display.screen().root.id)

        def _assert_docked(self) -> None:
            if not self._embedded() and time.monotonic() - self._dock_requested > DOCK_RETRY:
                self._dock_requested = time.monotonic()
                self._dock_window()
            assert self._systray_manager

        def _events(self) -> Iterator[Any]:
            while True:
                self._run_calls()
                if not self._display.pending_events():
                    ready, _, _ = select.select(
                        [self._display, self._wake_read], [], [], DOCK_CHECK
                    )
                    if self._wake_read in ready:
                        continue
                    if not ready:
                        if self.visible:
                            with contextlib.suppress(AssertionError):
                                self._assert_docked()
                        continue
                event = self._display.next_event()
                if not event:
                    return
                yield event

        def release(self) -> None:
            """Close the X connection and the wake-up pipe once the loop has ended."""
            with contextlib.suppress(Exception):
                self._display.close()
            for fd in (self._wake_read, self._wake_write):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._wake_read = self._wake_write = -1

        def __del__(self) -> None:
            with contextlib.suppress(Exception):
                super().__del__()
            with contextlib.suppress(Exception):
                self.release()

    return FixedXorgIcon
