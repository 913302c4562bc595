"""One contract, every kind of location: what the engine relies on, checked on each backend.

Parametrized over a folder, a ZIP archive and FTP servers (with MLSD/MFMT, without them, and
over TLS). A new kind of location passes this suite before the engine ever sees it.
"""

from __future__ import annotations

import io
import os
import queue

import pytest

from app.errors import FileVanished, UnsafePath
from app.locations.base import FileMeta, Location
from app.watch.change import Change, ChangeKind
from app.watch.choose import watcher_for
from tests.helpers import wait_until
from tests.writes import write_bytes as _write

KINDS = [
    "folder", "zip", "ftp", "ftp_list", "ftps", "sftp", "sftp_rclone", "s3_rclone", "s3_moto",
]  # fmt: skip
T0 = 1_700_000_000_000_000_000  # 2023-11-14, a whole second, in ns


@pytest.fixture(params=KINDS)
def location(request: pytest.FixtureRequest) -> Location:
    """The location under test: see ``*_location`` fixtures in conftest and ftp_server."""
    loc = request.getfixturevalue(f"{request.param}_location")
    assert isinstance(loc, Location)
    return loc


def _read(loc: Location, path: str) -> bytes:
    with loc.open_read(path) as f:
        return f.read()


def _matches(written: FileMeta, listed: FileMeta | None) -> bool:
    """What write() returned is what the location lists (a tag of 0 means "not known yet")."""
    return written.same_version(listed) and written.tag in (0, listed.tag)  # type: ignore[union-attr]


def _close_enough(loc: Location, a: int, b: int) -> bool:
    return abs(a - b) < max(loc.capabilities.mtime_precision_ns, 1)


def test_empty_location_scans_empty(location: Location) -> None:
    assert location.scan() == {}


def test_written_file_is_listed_with_size_and_requested_mtime(location: Location) -> None:
    meta = _write(location, "a.txt", b"hello")
    assert meta.size == 5
    listing = location.scan()
    assert set(listing) == {"a.txt"} and _matches(meta, listing["a.txt"])
    assert _matches(meta, location.stat("a.txt"))
    if location.capabilities.can_set_mtime:
        assert _close_enough(location, meta.mtime_ns, T0)


def test_nested_write_creates_folders_and_reads_back(location: Location) -> None:
    _write(location, "d1/d2/deep.bin", b"\x00\x01" * 1000)
    assert _read(location, "d1/d2/deep.bin") == b"\x00\x01" * 1000
    assert set(location.scan()) == {"d1/d2/deep.bin"}


def test_overwrite_replaces_content(location: Location) -> None:
    _write(location, "f.txt", b"old content")
    meta = _write(location, "f.txt", b"new", T0 + 10_000_000_000)
    assert _read(location, "f.txt") == b"new"
    assert _matches(meta, location.stat("f.txt"))


def test_delete_removes_and_missing_delete_is_fine(location: Location) -> None:
    _write(location, "dir/x.txt", b"x")
    _write(location, "keep.txt", b"k")
    with location.batch():
        location.delete("dir/x.txt")
        location.delete("never-existed.txt")
    assert set(location.scan()) == {"keep.txt"}
    assert location.stat("dir/x.txt") is None


def test_read_of_missing_file_raises_file_vanished(location: Location) -> None:
    with pytest.raises(FileVanished), location.open_read("nope.txt"):
        pass


def test_rename_keeps_content_and_mtime(location: Location) -> None:
    if not location.capabilities.can_rename:
        pytest.skip(f"{location.kind} declares can_rename=False")
    before = _write(location, "old name.txt", b"payload")
    with location.batch():
        after = location.rename("old name.txt", "sub/new name.txt")
    assert set(location.scan()) == {"sub/new name.txt"}
    assert _read(location, "sub/new name.txt") == b"payload"
    assert after.size == before.size
    assert _close_enough(location, after.mtime_ns, before.mtime_ns)


@pytest.mark.parametrize(
    "name",
    [
        "unicode-é-日本語-🙂.txt",
        "with spaces/and more spaces.txt",
        "l" * 200 + ".txt",
        "#hash%percent&amp;.txt",
    ],
)
def test_odd_names_round_trip(location: Location, name: str) -> None:
    _write(location, name, b"odd")
    assert set(location.scan()) == {name}
    assert _read(location, name) == b"odd"


@pytest.mark.parametrize("bad", ["../x", "/abs", "a/../../b", "a\x00b", "a//b", "./x"])
def test_unsafe_names_are_refused(location: Location, bad: str) -> None:
    with pytest.raises(UnsafePath):
        _write(location, bad, b"evil")
    assert location.scan() == {}


@pytest.mark.parametrize(
    "name",
    [
        "c:evil",
        "back\\slash",
        "..\\up",
        "dir/..\\..\\x",
        os.fsdecode(b"not-utf8-\xff"),
        "two\nlines",
    ],
)
def test_a_location_holds_exactly_the_names_it_declares(location: Location, name: str) -> None:
    if location.capabilities.names.refusal(name) is None:
        _write(location, name, b"odd")
        assert set(location.scan()) == {name}
        assert _read(location, name) == b"odd"
    else:
        with pytest.raises(UnsafePath):
            _write(location, name, b"odd")
        assert location.scan() == {}


def test_batched_writes_all_land(location: Location) -> None:
    with location.batch():
        for i in range(20):
            location.write(f"b/{i}.txt", io.BytesIO(str(i).encode()), T0 + i * 3_000_000_000)
    listing = location.scan()
    assert len(listing) == 20
    assert _read(location, "b/7.txt") == b"7"


def test_scan_prefix_limits_listing(location: Location) -> None:
    _write(location, "x/1.txt", b"1")
    _write(location, "xy/2.txt", b"2")
    _write(location, "x/sub/3.txt", b"3")
    assert set(location.scan("x")) == {"x/1.txt", "x/sub/3.txt"}


def test_large_file_streams(location: Location) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    _write(location, "big.bin", data)
    assert location.stat("big.bin").size == len(data)  # type: ignore[union-attr]
    assert _read(location, "big.bin") == data


def test_watcher_reports_a_change(location: Location) -> None:
    changes: queue.Queue[Change] = queue.Queue()
    watcher = watcher_for(location, changes.put, poll_interval=0.1)
    watcher.start()
    try:
        _write(location, "seen.txt", b"seen")
        seen: list[Change] = []

        def saw_it() -> bool:
            while not changes.empty():
                seen.append(changes.get_nowait())
            return any(
                c.path == "seen.txt" or c.dest == "seen.txt" or c.kind is ChangeKind.TREE
                for c in seen
            )

        wait_until(saw_it, message=lambda: f"a change for seen.txt (got {seen})")
    finally:
        watcher.stop()
