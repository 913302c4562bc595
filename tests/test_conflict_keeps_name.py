"""While a conflict is resolved, the file's name always shows a whole version.

The losing version is kept under its conflict-copy name first (a file of its own: copied
within a folder, through the location's own interface elsewhere); only then does the winner
replace the name, atomically. A user or program opening the name in between sees the loser,
never "no such file"; one writing into it then does not touch the conflict copy; and a winner
whose copy fails leaves both versions under a name.

Real engines over real folders, ZIP archives and FTP and SFTP servers on 127.0.0.1. The winner
comes from a real folder whose read of the file waits at a gate (a slow download, a slow disk)
or fails there (the source disk failing mid-copy); a full tmpfs makes the write itself fail.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest

from app.engine.engine import Engine
from app.engine.index import StateIndex
from app.engine.settings import EngineSettings
from app.errors import FileChanged, FileVanished
from app.locations import LocationOptions, open_location
from app.locations.base import Location
from app.locations.folder.location import FolderLocation
from tests.disks import small_tmpfs
from tests.ftp_server import ThreadedFtpServer
from tests.helpers import tree, wait_until, write_file
from tests.s3_server import S3Server
from tests.sshd_server import SftpServer
from tests.test_convergence import trashed
from tests.test_zip_helpers import run_zip, zip_tree

T = 1_700_000_000  # a fixed past mtime, in seconds
NAME = "doc.txt"
LOSER = b"the older edit, made in the target " * 40
WINNER = b"the newer edit, made in the source " * 50


class Gate:
    """Where the source's read of :data:`NAME` stops until the test lets it go on (or fail)."""

    def __init__(self) -> None:
        self.armed = False
        self.reached = threading.Event()
        self.release = threading.Event()
        self.fail = False

    def pass_through(self) -> None:
        """Called by a gated read before its first byte: wait here while the test looks."""
        self.reached.set()
        assert self.release.wait(120), "the test never released the gate"
        if self.fail:
            raise OSError(errno.EIO, "the source disk failed mid-copy")


class _GatedStream(io.RawIOBase):
    def __init__(self, inner: BinaryIO, gate: Gate) -> None:
        super().__init__()
        self._inner, self._gate, self._started = inner, gate, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._started:
            self._started = True
            self._gate.pass_through()
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class GatedFolder(FolderLocation):
    """A real folder whose reads of :data:`NAME` go through :attr:`gate` while it is armed.

    It declares no ``local_files``, so a folder target copies from it through ``open_read``
    (the gate) rather than with system calls on its descriptor.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.capabilities = FolderLocation.capabilities._replace(local_files=False)
        self.gate = Gate()

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        with super().open_read(path) as stream:
            if path == NAME and self.gate.armed:
                yield cast(BinaryIO, io.BufferedReader(_GatedStream(stream, self.gate)))
            else:
                yield stream


@dataclass
class Target:
    """A location of one kind where the loser is saved, seen from outside FileSync."""

    spec: str
    save: Callable[[bytes, float], None]  # a user's save of NAME there, with its mtime
    files: Callable[[], dict[str, bytes]]  # every user file as a reader outside FileSync sees


def folder_target(root: Path) -> Target:
    root.mkdir(parents=True, exist_ok=True)
    return Target(
        f"folder:{root}", lambda data, mtime: _save(root / NAME, data, mtime), lambda: tree(root)
    )


def _save(path: Path, data: bytes, mtime: float) -> None:
    write_file(path, data, mtime=mtime)


def zip_target(tmp: Path) -> Target:
    archive = tmp / "target.zip"
    staging = tmp / "zip-staging"

    def save(data: bytes, mtime: float) -> None:
        write_file(staging / NAME, data, mtime=mtime)
        run_zip(archive, NAME, cwd=staging)

    return Target(f"zip:{archive}", save, lambda: zip_tree(archive))


def s3_target(server: S3Server) -> Target:
    bucket = server.new_bucket()

    def save(data: bytes, mtime: float) -> None:
        meta = {"mtime": f"{mtime:.3f}"}  # as rclone and FileSync stamp an object's time
        server.client().put_object(Bucket=bucket, Key=f"root/{NAME}", Body=data, Metadata=meta)

    return Target(server.url(bucket, "root"), save, lambda: server.keys(bucket, "root/"))


@pytest.fixture(params=["folder", "zip", "ftp", "sftp", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """The target of each kind: a folder, an archive, an FTP and an SFTP server's folder, a
    bucket (moto)."""
    if request.param == "s3":
        return s3_target(request.getfixturevalue("moto_s3"))
    if request.param == "folder":
        return folder_target(tmp_path / "target")
    if request.param == "zip":
        return zip_target(tmp_path)
    if request.param == "ftp":
        ftp: ThreadedFtpServer = request.getfixturevalue("ftp_server")
        return replace(folder_target(ftp.root), spec=ftp.url())
    sftp: SftpServer = request.getfixturevalue("sshd_server")
    return replace(folder_target(sftp.root), spec=sftp.url())


class Conflict:
    """A source folder (gated) and a target, synced once, then edited in both (in the source
    only when ``loser`` is None)."""

    def __init__(self, tmp: Path, target: Target, loser: bytes | None = LOSER) -> None:
        self.tmp = tmp
        self.source_root = tmp / "source"
        self.target = target
        write_file(self.source_root / NAME, "the base version", mtime=T)
        self.source = GatedFolder(self.source_root)
        self.index = StateIndex(tmp / "state" / "index.sqlite")
        assert self.run_once(), "the first sync did not converge"
        if loser is not None:
            target.save(loser, T + 100)
        write_file(self.source_root / NAME, WINNER, mtime=T + 200)
        self.error: list[BaseException] = []

    def engine(self) -> Engine:
        self.source = GatedFolder(self.source_root)
        target = open_location(self.target.spec, LocationOptions(connect_timeout=10))
        settings = EngineSettings(debounce=0.03, poll_interval=0.2)
        return Engine([self.source, target], self.index, settings)

    def run_once(self) -> bool:
        engine = self.engine()
        try:
            engine.start(watch=False)
            return engine.converged()
        finally:
            engine.stop()

    @contextlib.contextmanager
    def running_gated(self, *, fail: bool) -> Iterator[Gate]:
        """A sync in the background whose winner copy waits at the gate; the block looks."""
        engine = self.engine()
        gate = self.source.gate
        gate.armed, gate.fail = True, fail

        def run() -> None:
            try:
                engine.start(watch=False)
            except BaseException as exc:  # reported by the test
                self.error.append(exc)

        thread = threading.Thread(target=run, name="gated sync")
        thread.start()
        try:
            wait_until(
                lambda: gate.reached.is_set() or not thread.is_alive(),
                timeout=120,
                message="the winner's copy to reach the gate",
            )
            assert gate.reached.is_set(), f"the sync ended without copying: {self.error}"
            yield gate
        finally:
            gate.release.set()
            thread.join(timeout=120)
            engine.stop()
        assert not thread.is_alive()
        assert not self.error, self.error

    def close(self) -> None:
        self.index.close()


@pytest.fixture
def conflict(tmp_path: Path, target: Target) -> Iterator[Conflict]:
    c = Conflict(tmp_path, target)
    yield c
    c.close()


def conflict_copies(files: dict[str, bytes]) -> dict[str, bytes]:
    return {n: data for n, data in files.items() if ".sync-conflict-" in n}


def test_the_name_shows_the_loser_until_the_winner_replaces_it(conflict: Conflict) -> None:
    with conflict.running_gated(fail=False):
        seen = conflict.target.files()
        assert seen.get(NAME) == LOSER, f"{NAME} mid-copy: {seen.get(NAME, 'missing')!r}"
    assert conflict.run_once(), "the sync after the conflict did not converge"
    for files in (conflict.target.files(), tree(conflict.source_root)):
        assert files[NAME] == WINNER
        assert list(conflict_copies(files).values()) == [LOSER], sorted(files)


def test_a_failed_winner_copy_leaves_the_loser_under_both_names(conflict: Conflict) -> None:
    with conflict.running_gated(fail=True):
        pass
    files = conflict.target.files()
    assert files.get(NAME) == LOSER, f"{NAME} after the failed copy: {files.get(NAME)!r}"
    assert list(conflict_copies(files).values()) == [LOSER], sorted(files)
    assert tree(conflict.source_root)[NAME] == WINNER
    # The next sync finishes the job with the copy kept the first time: no second copy.
    assert conflict.run_once(), "the sync after the failed copy did not converge"
    for files in (conflict.target.files(), tree(conflict.source_root)):
        assert files[NAME] == WINNER
        assert list(conflict_copies(files).values()) == [LOSER], sorted(files)


@contextlib.contextmanager
def small_disk_conflict(
    tmp_path: Path, loser: bytes, winner: bytes
) -> Iterator[tuple[Path, Callable[[], bool]]]:
    """A folder target on a 2 MiB disk holding ``loser``, the source (elsewhere) ``winner``;
    with a function running one sync."""
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        target = disk / "target"
        target.mkdir()
        source = tmp_path / "source"
        write_file(source / NAME, "the base version", mtime=T)
        index = StateIndex(tmp_path / "state" / "index.sqlite")
        try:

            def once() -> bool:
                locations: list[Location] = [
                    open_location(f"folder:{source}"),
                    open_location(f"folder:{target}"),
                ]
                engine = Engine(locations, index, EngineSettings(debounce=0.03))
                try:
                    engine.start(watch=False)
                    return engine.converged()
                finally:
                    engine.stop()

            assert once()
            write_file(target / NAME, loser, mtime=T + 100)
            write_file(source / NAME, winner, mtime=T + 200)
            yield target, once
        finally:
            index.close()


def temp_files(root: Path) -> list[str]:
    return [n for _, _, names in os.walk(root) for n in names if n.startswith(".filesync-tmp")]


def test_a_full_disk_keeps_the_loser_under_its_name_and_its_conflict_name(
    tmp_path: Path,
) -> None:
    """The loser's copy fits on the target's disk, the winner then does not: its write fails
    with ENOSPC, and the loser stays under both names, in two files."""
    big_loser = os.urandom(600_000)
    with small_disk_conflict(tmp_path, big_loser, os.urandom(1_500_000)) as (target, once):
        assert not once(), "the winner should not fit on the target's disk"
        files = tree(target)
        assert files.get(NAME) == big_loser, f"{NAME}: {len(files.get(NAME, b''))} bytes"
        assert list(conflict_copies(files).values()) == [big_loser], sorted(files)
        (copy,) = conflict_copies(files)
        kept = (target / copy).stat()
        assert kept.st_ino != (target / NAME).stat().st_ino, "a link, not a copy"
        assert kept.st_nlink == 1
        assert temp_files(target) == []


def test_a_conflict_copy_that_does_not_fit_leaves_both_versions_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The loser's copy does not fit on the target's disk (the winner would): no conflict copy,
    and so no winner there either; both versions stay, and one line says what to do."""
    big_loser, winner = os.urandom(1_200_000), os.urandom(300_000)
    with small_disk_conflict(tmp_path, big_loser, winner) as (target, once):
        assert not once(), "the loser's copy should not fit on the target's disk"
        assert tree(target) == {NAME: big_loser}, "the winner was written without the loser kept"
        assert temp_files(target) == [], "a partial copy was left behind"
        assert tree(tmp_path / "source") == {NAME: winner}
        said = [r.getMessage() for r in caplog.records if "conflict copy" in r.getMessage()]
        assert any("free some space" in line for line in said), said
        assert all("\n" not in line for line in said), said


def test_a_grouped_copy_whose_source_failed_is_made_at_the_next_sync(tmp_path: Path) -> None:
    """A folder target gets its copies in groups, after the decision's rows were written: a
    copy failing for its source's sake leaves the target behind, not "in step"."""
    c = Conflict(tmp_path, folder_target(tmp_path / "target"), loser=None)
    try:
        with c.running_gated(fail=True):
            pass
        assert c.target.files() == {NAME: b"the base version"}
        assert c.run_once()
        assert c.target.files() == {NAME: WINNER}
    finally:
        c.close()


def test_a_folder_copies_aside_only_the_version_it_was_asked_for(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    write_file(root / "a.txt", "version one", mtime=T)
    os.chmod(root / "a.txt", 0o640)
    loc = FolderLocation(root)
    planned = loc.stat("a.txt")
    assert planned is not None
    meta = loc.copy_aside("a.txt", "kept/a.txt", planned)
    assert meta == loc.stat("kept/a.txt") and meta.same_version(planned)
    assert loc.stat("a.txt") == planned, "the original was touched"
    assert (root / "kept/a.txt").stat().st_mode & 0o777 == 0o640
    with pytest.raises(FileExistsError):
        loc.copy_aside("a.txt", "kept/a.txt", planned)
    with open(root / "a.txt", "r+b") as f:  # written in place: the copy is a file of its own
        f.write(b"VERSION TWO")
    assert (root / "kept/a.txt").read_bytes() == b"version one"
    with pytest.raises(FileChanged):
        loc.copy_aside("a.txt", "other.txt", planned)
    assert not (root / "other.txt").exists()
    with pytest.raises(FileVanished):
        loc.copy_aside("gone.txt", "other.txt", planned)
    assert temp_files(root) == []


@pytest.mark.parametrize("in_place", [False, True], ids=["saved-by-rename", "saved-in-place"])
def test_a_save_made_during_the_winner_copy_is_not_overwritten(
    tmp_path: Path, in_place: bool
) -> None:
    """The winner replaces the name only if it still holds the loser: a save made meanwhile
    (an editor's rename over it, or a program writing into the file) stays, and wins. The
    loser's conflict copy is a file of its own: a write into the name leaves it as it was."""
    target = folder_target(tmp_path / "target")
    c = Conflict(tmp_path, target)
    newest = b"saved in the target while the winner was being copied"
    try:
        with c.running_gated(fail=False):
            name = tmp_path / "target" / NAME
            if in_place:
                with open(name, "r+b") as f:
                    f.write(newest)
                    f.truncate()
            else:
                write_file(tmp_path / "target" / "editor.tmp", newest)
                os.replace(tmp_path / "target" / "editor.tmp", name)
        assert target.files()[NAME] == newest
        assert c.run_once(), "the sync after the save did not converge"
        for files in (target.files(), tree(c.source_root)):
            assert files[NAME] == newest
        kept = set(conflict_copies(target.files()).values()) | trashed([c.source_root])
        assert WINNER in kept, "the winner was lost"
        assert LOSER in kept, "the loser exists nowhere"
    finally:
        c.close()
