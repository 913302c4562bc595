"""A folder and a ZIP archive kept in sync by the real engine, end to end."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.engine.engine import Engine
from app.engine.index import StateIndex
from app.engine.settings import EngineSettings
from app.locations import open_location
from app.locations.zip.location import ZipLocation
from tests.helpers import wait_until, write_file
from tests.test_zip_helpers import run_zip


@dataclass
class ZipRig:
    """A folder, an archive, and the engine running over both."""

    folder: Path
    archive: Path
    zip: ZipLocation
    engine: Engine

    def archive_files(self) -> dict[str, bytes]:
        with zipfile.ZipFile(self.archive) as zf:
            return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}

    def folder_files(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.folder).as_posix(): p.read_bytes()
            for p in self.folder.rglob("*")
            if p.is_file() and ".filesync" not in p.relative_to(self.folder).as_posix()
        }

    def wait_in_sync(self) -> None:
        wait_until(
            lambda: self.archive_files() == self.folder_files(),
            message=lambda: (
                f"archive {sorted(self.archive_files())} == folder {sorted(self.folder_files())}"
            ),
        )


@pytest.fixture
def zip_rig(tmp_path: Path) -> Iterator[ZipRig]:
    """A folder with three files and a new archive, synced by a running engine."""
    folder = tmp_path / "folder"
    for i in range(3):
        write_file(folder / f"start{i}.txt", f"start {i}")
    archive = tmp_path / "archive.zip"
    zloc = open_location(f"zip:{archive}")
    assert isinstance(zloc, ZipLocation)
    index = StateIndex(tmp_path / "state" / "index.sqlite")
    engine = Engine(
        [open_location(f"folder:{folder}"), zloc],
        index,
        EngineSettings(debounce=0.05, poll_interval=0.1),
    )
    engine.start()
    try:
        rig = ZipRig(folder, archive, zloc, engine)
        rig.wait_in_sync()
        yield rig
    finally:
        engine.stop()
        index.close()


def test_a_burst_of_100_changes_costs_at_most_two_rewrites(zip_rig: ZipRig) -> None:
    before = zip_rig.zip.rewrites
    for i in range(100):
        write_file(zip_rig.folder / "burst" / f"f{i:03d}.txt", f"burst {i}\n" * 20)
    zip_rig.wait_in_sync()
    assert zip_rig.engine.wait_idle(30)
    assert zip_rig.zip.rewrites - before <= 2


def test_edits_made_with_the_zip_tool_reach_the_folder(zip_rig: ZipRig, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_file(outside / "added-by-zip.txt", "from the zip command")
    run_zip(zip_rig.archive, "added-by-zip.txt", cwd=outside)
    wait_until((zip_rig.folder / "added-by-zip.txt").exists, message="zip add arrives")
    run_zip(zip_rig.archive, "-d", "start1.txt", cwd=outside)
    wait_until(lambda: not (zip_rig.folder / "start1.txt").exists(), message="zip delete arrives")
    zip_rig.wait_in_sync()


def test_folder_rename_is_a_rename_in_the_archive(zip_rig: ZipRig) -> None:
    (zip_rig.folder / "start0.txt").rename(zip_rig.folder / "renamed.txt")
    zip_rig.wait_in_sync()
    assert "renamed.txt" in zip_rig.archive_files()
