"""Files new in one location are planned a chunk at a time (``app.engine.newfiles``), and that
shortcut must decide exactly what planning each path alone decides."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import app.engine.chunks
from app.engine import copies
from app.engine.copies import PendingCopy
from app.engine.ignore import IgnoreRules
from app.engine.links import HeldLinks
from app.engine.namegate import NameGate
from app.engine.newfiles import split_new
from app.engine.reading import Reader
from app.engine.slot import Slot
from app.engine.status import Activity
from app.locations import LocationOptions, open_location
from app.locations.base import FileMeta, Listing, Location, WriteOutcome
from app.locations.names import FTP_NAMES, POSIX_NAMES, ZIP_NAMES, plain_names
from app.watch.watcher import Watcher
from app.watch.writes import Writing
from tests.engine_fixtures import Rig, run_once
from tests.helpers import tree, write_file

T = 1_700_000_000  # a fixed past mtime, in seconds
POLICIES = (POSIX_NAMES, ZIP_NAMES, FTP_NAMES)
NAME_CHARS = st.sampled_from([*"ab./\\:\n\r\x00 Cé", os.fsdecode(b"\xff")])


@given(st.lists(st.text(NAME_CHARS, max_size=8), min_size=1, max_size=4))
def test_plain_names_are_names_every_kind_holds(paths: list[str]) -> None:
    every_kind = all(
        policy.refusal(p) is None and p.isascii() for p in paths for policy in POLICIES
    )
    assert plain_names(paths) == every_kind, paths


def test_plain_names_sees_each_odd_name_among_many() -> None:
    plain = [f"d{n % 7}/f{n}.bin" for n in range(500)]
    assert plain_names(plain)
    for odd in ("", "/abs", "a//b", "a/./b", "a/../b", "a/", ".", "..", "C:x", "a\\b", "a\nb"):
        for at in (0, 250, 500):
            assert not plain_names([*plain[:at], odd, *plain[at:]]), (odd, at)
    assert plain_names(["ab:c", "x/C:y", "..a", "a..", ".hidden/.x"])  # odd only elsewhere


class _Writing(Watcher):
    """A watcher that sees one file still being written (the input the planner reads)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def unsettled(self, path: str) -> Writing | None:
        return Writing(1.0, 0.5) if path == self.path else None


def _slots(tmp_path: Path) -> dict[str, Slot]:
    slots = {}
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        slot = Slot(open_location(f"folder:{tmp_path / name}", LocationOptions()))
        slots[slot.key] = slot
    return slots


def test_split_new_takes_only_what_the_planner_would_copy_from_one_location(
    tmp_path: Path,
) -> None:
    slots = _slots(tmp_path)
    a, b, c = slots
    meta = FileMeta(1, T * 10**9, 1)
    paths = sorted(f"p{n:02d}" for n in range(12))
    listings: dict[str, Listing] = {key: {} for key in slots}
    for n, path in enumerate(paths):
        listings[(a, b)[n % 2]][path] = meta  # new in a or in b
    listings[c]["p00"] = meta  # listed twice: the planner compares them
    slots[b].known["p01"] = meta  # a row somewhere: not new
    slots[c].stale.add("p02")
    slots[a].held_deletes.add("p04")
    slots[b].failing["p05"] = 1
    slots[a].watcher = _Writing("p06")  # still written: the planner parks it
    record = lambda *_: None  # noqa: E731
    new, rest = split_new(paths, listings, slots, HeldLinks(record), NameGate(record))
    assert new == {a: ["p08", "p10"], b: ["p03", "p07", "p09", "p11"]}
    assert rest == ["p00", "p01", "p02", "p04", "p05", "p06"]


def test_split_new_leaves_everything_to_the_planner_when_a_location_is_not_listed(
    tmp_path: Path,
) -> None:
    slots = _slots(tmp_path)
    a, b, _ = slots
    listings: dict[str, Listing] = {a: {"x": FileMeta(1, 0, 1)}, b: {}}  # c unavailable
    record = lambda *_: None  # noqa: E731
    assert split_new(["x"], listings, slots, HeldLinks(record), NameGate(record)) == ({}, ["x"])


def _mixed_tree(root: Path) -> None:
    """Three folders: new files in two of them, the same file twice, a clash, an odd name."""
    a, b, c = (root / n for n in "abc")
    for n in range(300):
        write_file(a / f"d{n % 9}/f{n:03d}.txt", f"a{n}" * (n % 50), T + n)
    for n in range(40):
        write_file(b / f"e{n % 3}/g{n:02d}.txt", f"b{n}", T + n)
    write_file(a / "same.txt", "same", T)
    write_file(b / "same.txt", "same", T)
    write_file(a / "clash.txt", "older", T)
    write_file(c / "clash.txt", "newer!", T + 60)
    write_file(a / "odd\\name.txt", "odd", T)
    c.mkdir(exist_ok=True)


Outcome = tuple[dict[str, dict[str, bytes]], set[tuple[str, ...]], list[tuple[str, ...]]]


def _once(rig: Rig, root: Path) -> list[tuple[str, ...]]:
    """A ``--once`` run over ``rig``; its activity records, each location named by its folder."""
    records: list[tuple[str, ...]] = []

    def noting(record: Activity) -> None:
        records.append(tuple(str(f).replace(f"{root}/", "") for f in record[1:]))

    run_once(rig.locations(), rig.state, rig.settings, noting)
    return records


def _outcome(rig: Rig, root: Path, records: list[tuple[str, ...]]) -> Outcome:
    """Every folder's files, every index row (stale ones too) and the activity, sorted."""
    files = {folder.name: tree(folder) for folder in rig.roots}
    db = sqlite3.connect(rig.state)
    try:
        rows = {
            (where.replace(f"folder:{root}/", ""), *map(str, rest))
            for table in ("files", "stale")
            for where, *rest in db.execute(
                f"SELECT location, path{', size, mtime_ns' if table == 'files' else ''}"
                f" FROM {table}"
            )
        }
    finally:
        db.close()
    return files, rows, sorted(records)


@pytest.mark.parametrize(
    "second", ["more new files", "deletes and edits", "file to folder", "folder to file"]
)
def test_bulk_planning_ends_exactly_where_planning_each_path_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second: str
) -> None:
    taken: list[int] = []

    def counting(*args: object) -> tuple[dict[str, list[str]], list[str]]:
        new, rest = split_new(*args)  # type: ignore[arg-type]
        taken.append(sum(map(len, new.values())))
        return new, rest

    outcomes = []
    for bulk in (True, False):
        root = tmp_path / ("bulk" if bulk else "each")
        _mixed_tree(root)
        rig = Rig(root, [root / n for n in "abc"])
        with monkeypatch.context() as patch:
            patch.setattr(app.engine.chunks, "split_new", counting if bulk else _none_new)
            records = _once(rig, root)
            for n in range(40):  # enough new files that a group is sent before the rest
                write_file(root / "b" / f"more/m{n}.txt", f"m{n}", T + 7)
            if second == "more new files":
                for n in range(50):
                    write_file(root / "c" / f"h/n{n}.txt", f"c{n}", T + 5)
            elif second == "file to folder":  # the file's delete must go before the folder
                os.remove(root / "a" / "same.txt")
                write_file(root / "a" / "same.txt" / "now a folder.txt", "in it", T + 5)
            elif second == "folder to file":
                shutil.rmtree(root / "b" / "d4")
                write_file(root / "b" / "d4", "now a file", T + 5)
            else:
                os.remove(root / "b" / "d1" / "f001.txt")
                for where in "bc":  # listed by a alone, but known: a delete, not a new file
                    os.remove(root / where / "d3" / "f003.txt")
                write_file(root / "c" / "d2" / "f002.txt", "edited", T + 500)
                write_file(root / "c" / "new.txt", "new", T + 5)
            records += _once(rig, root)
        outcomes.append(_outcome(rig, root, records))
    assert outcomes[0] == outcomes[1]
    files = outcomes[0][0]
    assert files["a"] == files["b"] == files["c"]
    assert taken[0] >= 300 + 40 - 2  # the bulk route did run, for most of the first sync


def _none_new(paths: list[str], *args: object) -> tuple[dict[str, list[str]], list[str]]:
    """The shortcut off: every path planned on its own."""
    return {}, paths


def _after_the_listings_are_read(monkeypatch: pytest.MonkeyPatch, act: Callable[[], None]) -> None:
    """Call ``act`` once, right after the full sync read every location's listing."""
    real = Reader.scan_all
    acted: list[bool] = []

    def scanning(self: Reader, ignore: IgnoreRules) -> dict[str, Listing]:
        listings = real(self, ignore)
        if not acted:
            acted.append(True)
            act()
        return listings

    monkeypatch.setattr(Reader, "scan_all", scanning)


@pytest.mark.parametrize("which", ["a", "b"])
def test_a_location_unplugged_while_new_files_are_copied_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    """1,500 new files in a and 5 in b; one of them is unplugged once listed, and plugged in
    again for the next run. With b unplugged the sync raised KeyError: the copies of a's
    files into b failed, b's listing was dropped, and b's own new files were then looked up
    in it."""
    files = {f"a{n:04d}": f"a{n}".encode() for n in range(1500)}
    files |= {f"b{n}": f"b{n}".encode() for n in range(5)}
    for path, data in files.items():
        write_file(tmp_path / path[0] / path, data, T)
    rig = Rig(tmp_path, [tmp_path / "a", tmp_path / "b"])
    gone = tmp_path / which
    with monkeypatch.context() as patch:
        _after_the_listings_are_read(patch, lambda: gone.rename(gone.with_name("unplugged")))
        rig.once()
    assert len(tree(gone.with_name("unplugged"))) in (5, 1500)  # nothing was written there
    gone.with_name("unplugged").rename(gone)
    assert rig.once()
    assert tree(tmp_path / "a") == tree(tmp_path / "b") == files


def test_groups_of_new_files_keep_their_size_in_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """150 new files of 1 MiB: groups of at most GROUP_BYTES (and the file that fills one), as
    path by path; the bulk route made one group of 128 MiB."""
    a, b = tmp_path / "a", tmp_path / "b"
    for n in range(150):
        write_file(a / f"f{n:03d}", bytes([n]) * (1 << 20), T)
    b.mkdir()
    groups: list[int] = []
    real = copies._write_group

    def noting(target: Location, group: list[PendingCopy], settle: bool) -> list[WriteOutcome]:
        groups.append(sum(copy.winner.size for copy in group))
        return real(target, group, settle)

    monkeypatch.setattr(copies, "_write_group", noting)
    assert Rig(tmp_path, [a, b]).once()
    assert sum(groups) == 150 << 20
    assert max(groups) <= copies.GROUP_BYTES + (1 << 20), [g >> 20 for g in groups]
