"""A folder's trash: what it keeps and how big it may grow (issue 9)."""

from __future__ import annotations

import io
from pathlib import Path

from app.locations.folder import FolderLocation
from tests.helpers import write_file

KB = 1000


def _folder(tmp_path: Path, cap: int) -> FolderLocation:
    root = tmp_path / "f"
    root.mkdir()
    loc = FolderLocation(root, trash_max_bytes=cap)
    loc.open()
    loc.adopt(has_history=False)
    return loc


def _trash(loc: FolderLocation) -> dict[str, bytes]:
    trash = loc.root / ".filesync/trash"
    notes = set(trash.glob("*/.filesync"))  # each stamp folder's note: why and when
    return {p.name: p.read_bytes() for p in trash.rglob("*") if p.is_file() and p not in notes}


def _replace(loc: FolderLocation, path: str, data: bytes) -> None:
    loc.write(path, io.BytesIO(data), 1_700_000_000 * 10**9)


def test_trash_stays_under_its_cap_oldest_versions_first(tmp_path: Path) -> None:
    """Ten user versions of 100 kB with a 300 kB cap: the newest are kept, the oldest go."""
    loc = _folder(tmp_path, 300 * KB)
    versions = [bytes([n]) * 100 * KB for n in range(10)]
    for n, data in enumerate(versions):
        write_file(loc.root / f"v{n}.bin", data)  # a user's version...
        _replace(loc, f"v{n}.bin", b"the engine's copy")  # ...that the engine replaces
    kept = _trash(loc)
    assert sum(len(d) for d in kept.values()) <= 300 * KB
    assert kept["v9.bin"] == versions[9], "the newest trashed version must be kept"
    assert "v0.bin" not in kept, "the oldest trashed version must go first"


def test_one_version_bigger_than_the_cap_is_kept_until_the_next(tmp_path: Path) -> None:
    loc = _folder(tmp_path, 50 * KB)
    write_file(loc.root / "big.bin", b"1" * 100 * KB)
    _replace(loc, "big.bin", b"new")
    assert _trash(loc) == {"big.bin": b"1" * 100 * KB}
    write_file(loc.root / "other.bin", b"2" * 80 * KB)
    loc.delete("other.bin")
    assert _trash(loc) == {"other.bin": b"2" * 80 * KB}


def test_the_engines_fresh_copy_replaced_is_not_trashed_but_a_users_edit_is(
    tmp_path: Path,
) -> None:
    loc = _folder(tmp_path, 10**9)
    _replace(loc, "a.txt", b"partial")
    _replace(loc, "a.txt", b"partial, longer")  # replaces its own fresh copy
    loc.rename("a.txt", "b.txt")  # still its copy under the new name
    _replace(loc, "b.txt", b"final")
    assert _trash(loc) == {}
    _replace(loc, "c.txt", b"copy")
    write_file(loc.root / "c.txt", b"the user's edit")
    _replace(loc, "c.txt", b"newer")
    assert _trash(loc) == {"c.txt": b"the user's edit"}


def test_each_trashed_version_is_noted_with_its_reason_and_the_note_is_not_counted(
    tmp_path: Path,
) -> None:
    loc = _folder(tmp_path, 140 * KB)
    write_file(loc.root / "kept.bin", b"1" * 100 * KB)
    _replace(loc, "kept.bin", b"new")
    write_file(loc.root / "gone.bin", b"2" * 40 * KB)
    loc.delete("gone.bin")
    store = loc.version_store()
    assert store is not None
    reasons = {v.path: v.reason for v in store.trashed()}
    assert reasons == {"kept.bin": "overwritten", "gone.bin": "deleted"}
    assert len(_trash(loc)) == 2, "140 kB of versions fit a 140 kB cap: the notes do not count"


def test_a_fresh_copy_deleted_is_kept_as_it_may_be_the_last_version(tmp_path: Path) -> None:
    """Saved in another folder, synced here, deleted there by hand a minute later: the
    engine's delete of this copy is the only chance to keep the file, so it is trashed."""
    loc = _folder(tmp_path, 10**9)
    _replace(loc, "report.txt", b"an hour of work")
    loc.rename("report.txt", "final.txt")
    loc.delete("final.txt")
    assert _trash(loc) == {"final.txt": b"an hour of work"}
    store = loc.version_store()
    assert store is not None
    assert [(v.path, v.reason) for v in store.trashed()] == [("final.txt", "deleted")]
