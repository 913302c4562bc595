"""Restarting over an S3 bucket: the object times learned by HEADs are kept in the state folder,
so a restart HEADs only what changed while FileSync was off (issue 13). Real servers (rclone
serve s3, moto) and the real engine built as the command line builds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.builder import CACHE_DIR, build_engine
from app.engine.settings import EngineSettings
from app.locations import LocationOptions, parse_spec
from app.locations.base import Location
from tests.helpers import tree, write_file
from tests.s3_server import S3Server

FILES = 12
T_THEIRS = 1_700_000_000_500_000_000


def run_once(server: S3Server, bucket: str, folder: Path, state: Path) -> int:
    """One ``run --once`` of ``folder`` with ``bucket``; the HEADs the S3 location sent."""
    specs = [parse_spec(f"folder:{folder}"), parse_spec(server.url(bucket, "root"))]
    engine = build_engine(specs, state, EngineSettings(), LocationOptions(connect_timeout=5))
    try:
        assert engine.run_once()
        (s3,) = [loc for loc in engine.locations() if loc.kind == "s3"]
        return _heads(s3)
    finally:
        engine.close()


def _heads(location: Location) -> int:
    return int(location.head_count)  # type: ignore[attr-defined]


def synced_folder(server: S3Server, bucket: str, tmp_path: Path) -> tuple[Path, Path]:
    """A folder of :data:`FILES` files synced once into ``bucket``: (folder, state folder)."""
    folder, state = tmp_path / "folder", tmp_path / "state"
    for i in range(FILES):
        write_file(folder / f"d/{i:02d}.txt", f"file {i}".encode())
    run_once(server, bucket, folder, state)
    return folder, state


def test_a_restart_over_an_unchanged_bucket_sends_no_head(server: S3Server, tmp_path: Path) -> None:
    bucket = server.new_bucket()
    folder, state = synced_folder(server, bucket, tmp_path)
    assert run_once(server, bucket, folder, state) == 0
    assert run_once(server, bucket, folder, state) == 0  # and again: nothing was forgotten


def test_an_object_changed_while_filesync_was_off_is_headed_and_synced(
    server: S3Server, tmp_path: Path
) -> None:
    bucket = server.new_bucket()
    folder, state = synced_folder(server, bucket, tmp_path)
    # Another client replaces one file with content of the same size: only the ETag changes.
    same_size = b"FILE 3"
    assert len(same_size) == len(b"file 3")
    server.client().put_object(Bucket=bucket, Key="root/d/03.txt", Body=same_size,
                               Metadata={"mtime": "1700000000.5"})  # fmt: skip
    assert run_once(server, bucket, folder, state) == 1
    assert tree(folder)["d/03.txt"] == same_size
    assert (folder / "d/03.txt").stat().st_mtime_ns == T_THEIRS
    assert run_once(server, bucket, folder, state) == 0


@pytest.mark.parametrize(
    "damage",
    [
        "missing",
        "not json",
        "cut short",
        "wrong shape",
        "unreadable",
    ],
)
def test_a_damaged_or_missing_cache_falls_back_to_heads(
    server: S3Server, tmp_path: Path, damage: str
) -> None:
    bucket = server.new_bucket()
    folder, state = synced_folder(server, bucket, tmp_path)
    (saved,) = (state / CACHE_DIR).iterdir()
    data = saved.read_bytes()
    if damage == "missing":
        saved.unlink()
    elif damage == "not json":
        saved.write_bytes(b"\x00garbage")
    elif damage == "cut short":
        saved.write_bytes(data[: len(data) // 2])
    elif damage == "wrong shape":  # valid JSON, but a row's time is not a number
        saved.write_bytes(data.replace(b'"root/d/05.txt", 6,', b'"root/d/05.txt", "6",'))
        assert saved.read_bytes() != data
    else:
        saved.unlink()
        saved.mkdir()  # reading it fails; so does saving over it
    # Another client's change is still seen, with its own time: nothing is trusted blindly.
    server.client().put_object(Bucket=bucket, Key="root/d/07.txt", Body=b"theirs",
                               Metadata={"mtime": "1700000000.5"})  # fmt: skip
    assert run_once(server, bucket, folder, state) == FILES
    assert tree(folder)["d/07.txt"] == b"theirs"
    assert (folder / "d/07.txt").stat().st_mtime_ns == T_THEIRS
    # The next save replaced the damaged file (where it could be written).
    expected = FILES if damage == "unreadable" else 0
    assert run_once(server, bucket, folder, state) == expected
