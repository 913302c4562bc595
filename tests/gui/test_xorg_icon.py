"""The plain X tray icon under a real X server: changes made from other threads while its loop
runs (the setup thread shows it, the Tk thread changes picture and title and stops it) never
use its X connection from those threads, and never hang.

python-xlib loses a wake-up when two threads use one connection, which left the loop thread
waiting forever for a reply (and then ``Icon.stop`` waiting for the loop).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from app.ui.backends import load_backend
from app.ui.icons import load_icon
from app.ui.summary import TrayState
from tests.gui.conftest import Desktop
from tests.helpers import wait_until

pytestmark = pytest.mark.gui

CHANGES = 150


def test_changes_from_other_threads_leave_the_x_connection_to_the_loop_and_never_hang(
    desktop: Desktop,
) -> None:
    icon: Any = load_backend("xorg").icon_class(
        "filesync-test", icon=load_icon(TrayState.SYNCED), title="start"
    )
    connection = icon._display.display  # python-xlib's protocol object: every I/O passes here
    real_io = connection.send_and_recv
    users: set[str] = set()

    def recorded_io(*args: Any, **kwargs: Any) -> Any:
        users.add(threading.current_thread().name)
        return real_io(*args, **kwargs)

    connection.send_and_recv = recorded_io
    shown = threading.Event()

    def setup(icon: Any) -> None:
        icon.visible = True
        shown.set()

    loop = threading.Thread(target=icon.run, kwargs={"setup": setup}, name="icon-loop")
    loop.start()

    def change(name: str) -> None:
        for n in range(CHANGES):
            icon.title = f"{name} {n}"
            icon.icon = load_icon(TrayState.SYNCING if n % 2 else TrayState.PAUSED)

    changers = [threading.Thread(target=change, args=(f"t{i}",), name=f"t{i}") for i in (1, 2)]
    try:
        wait_until(shown.is_set, 60, "the setup thread to show the icon")
        for thread in changers:
            thread.start()
        for thread in changers:
            thread.join(60)
        stuck = [t.name for t in changers if t.is_alive()]
        assert not stuck, f"changes from {stuck} never finished: the icon's loop hangs"
        assert icon.title.startswith("t")
    finally:
        icon.visible = False
        icon.stop()
        loop.join(30)
    assert not loop.is_alive(), "Icon.stop did not end the loop"
    assert users == {"icon-loop"}, f"threads that used the X connection: {sorted(users)}"
    icon.release()  # the loop has ended: closing the connection here is safe
