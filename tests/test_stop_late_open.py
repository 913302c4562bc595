"""A stop while a location is still being reopened leaves nothing running.

Reopening a location that came back runs on its worker, with a deadline: a server that takes
the connection but does not answer yet is left to finish in the background. If FileSync stops
meanwhile and the server then answers, that late open starts a watcher; the stop must close it
too. A real pyftpdlib server in a child process, frozen with SIGSTOP; the autouse leak check of
conftest fails the test if a poller thread is left behind.
"""

from __future__ import annotations

import threading
from pathlib import Path

from app.engine.engine import Engine
from app.engine.index import StateIndex
from app.engine.settings import EngineSettings
from app.locations import LocationOptions, open_location
from tests.ftp_process import FtpProcess
from tests.helpers import describe_trees, trees_equal, wait_until, write_file


def test_a_stop_during_a_late_reopen_leaves_no_watcher_running(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    server = FtpProcess(tmp_path / "ftp-root", tmp_path / "ftp-server.log")
    index = StateIndex(tmp_path / "state" / "index.sqlite")
    try:
        ftp = open_location(server.url(), LocationOptions(connect_timeout=3))
        engine = Engine(
            [open_location(f"folder:{folder}"), ftp],
            index,
            EngineSettings(debounce=0.03, poll_interval=0.2),
        )
        write_file(folder / "a.txt", "before the freeze")
        engine.start()
        assert trees_equal(folder, server.root), describe_trees(folder, server.root)

        server.freeze()  # the poll times out, then reopening it waits for the login banner

        def reopening() -> bool:
            row = next(r for r in engine.status().locations if r.kind == "ftp")
            return "not answering" in row.last_error

        wait_until(reopening, 60, "a reopen of the frozen server in flight")
        stopper = threading.Thread(target=engine.stop, name="test stopper")
        stopper.start()
        wait_until(
            lambda: all(t.name != "filesync-engine" for t in threading.enumerate()),
            30,
            "the engine thread to end",
        )
        server.thaw()  # the login, and with it the open, completes now, during the stop
        stopper.join(60)
        assert not stopper.is_alive()
    finally:
        server.stop()
        index.close()
