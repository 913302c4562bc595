"""File names that are legal on Linux but not everywhere: non-UTF-8 bytes, ``:``, ``\\``, line
breaks. Between locations that can hold a name it syncs; a location that cannot hold it is left
out of that path with one warning, and nothing else is held up."""

from __future__ import annotations

import io
import logging
import os
import sqlite3
import zipfile
from pathlib import Path

import pytest

from app.engine.conflicts import conflict_name, is_conflict_copy
from app.engine.index import StateIndex
from app.engine.status import LocationState
from app.errors import FileSyncError, UnsafePath
from app.locations.base import FileMeta, check_relpath
from app.locations.names import FTP_NAMES, POSIX_NAMES, ZIP_NAMES, check_posix_relpath
from app.messages import shown
from tests.engine_fixtures import Rig
from tests.ftp_server import ThreadedFtpServer
from tests.helpers import describe_trees, tree, trees_equal, wait_until, write_file

BAD_UTF8 = os.fsdecode(b"bad\xff name.txt")  # "bad\udcff name.txt"
T = 1_700_000_000  # a fixed past mtime, in seconds
ODD = ["col:on.txt", "back\\slash.txt", "..\\up.txt", "C:drive.txt", "sp ace.txt", "é ü.txt"]


def converge(*roots: Path) -> None:
    wait_until(lambda: trees_equal(*roots), 60, lambda: describe_trees(*roots))


def assert_all_available(rig: Rig) -> None:
    assert rig.engine is not None
    status = rig.engine.status()
    states = {loc.name: loc.state for loc in status.locations}
    assert LocationState.UNAVAILABLE not in states.values(), states
    errors = [a for a in status.activity if a.action == "error"]
    assert not errors, errors


# ----- folders hold any name ---------------------------------------------------------------


def test_non_utf8_name_syncs_between_folders_and_is_remembered_across_restarts(rig: Rig) -> None:
    a, b, c = rig.roots
    write_file(a / BAD_UTF8, "not UTF-8")
    write_file(a / "plain.txt", "plain")
    assert rig.once()
    assert tree(b) == tree(c) == {BAD_UTF8: b"not UTF-8", "plain.txt": b"plain"}
    index = StateIndex(rig.state)
    try:
        assert BAD_UTF8 in index.load(f"folder:{b}")
    finally:
        index.close()
    assert rig.once()  # starts again over the stored name
    (b / BAD_UTF8).unlink()  # a delete is only propagated for a name the index remembered
    assert rig.once()
    assert tree(a) == tree(c) == {"plain.txt": b"plain"}


def test_a_conflict_on_a_non_utf8_name_keeps_both_versions(rig: Rig) -> None:
    a, b, c = rig.roots
    write_file(a / BAD_UTF8, "first", mtime=T)
    assert rig.once()
    write_file(a / BAD_UTF8, "edit in a", mtime=T + 10)
    write_file(b / BAD_UTF8, "edit in b", mtime=T + 20)
    assert rig.once()
    assert tree(a) == tree(b) == tree(c)
    assert tree(a)[BAD_UTF8] == b"edit in b"
    copies = [name for name in tree(a) if is_conflict_copy(name)]
    assert [tree(a)[name] for name in copies] == [b"edit in a"]
    assert copies[0].startswith("bad\udcff name.sync-conflict-")


def test_conflict_names_keep_odd_bytes_and_never_split_a_character() -> None:
    assert conflict_name(BAD_UTF8, T * 10**9, "a").startswith("bad\udcff name.sync-conflict-")
    long = conflict_name("é" * 200 + ".txt", T * 10**9, "laptop")
    assert len(long.encode()) <= 255 and long.endswith("-laptop.txt")


def test_files_sorting_after_a_non_utf8_name_still_sync(rig: Rig) -> None:
    a, b, c = rig.roots
    write_file(a / BAD_UTF8, "odd")
    expected = {BAD_UTF8: b"odd"}
    for n in range(5):
        expected[f"zzz/after-{n}.txt"] = write_file(c / f"zzz/after-{n}.txt", str(n)).read_bytes()
    rig.start()  # the initial full sync meets the odd name first
    converge(a, b, c)
    assert tree(b) == expected
    write_file(b / "zzz/later.txt", "later")
    wait_until(lambda: "zzz/later.txt" in tree(a), message="a live change after it syncs")
    assert_all_available(rig)


def test_names_with_colon_backslash_and_drive_letters_sync_between_folders(rig: Rig) -> None:
    a, b, c = rig.roots
    write_file(a / ODD[0], "at start")
    rig.start()
    for n, name in enumerate(ODD[1:]):
        write_file(b / name, f"live {n}")
    converge(a, b, c)
    assert sorted(tree(c)) == sorted(ODD)
    assert not (a.parent / "up.txt").exists()
    assert_all_available(rig)


# ----- a ZIP archive cannot hold them ------------------------------------------------------


def zip_names(archive: Path) -> set[str]:
    if not archive.exists():
        return set()
    with zipfile.ZipFile(archive) as z:
        return set(z.namelist())


def test_name_a_zip_cannot_hold_is_skipped_there_once_and_the_rest_syncs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    archive = tmp_path / "z.zip"
    rig = Rig(tmp_path, [a, b], extra_specs=[f"zip:{archive}"])
    refused = [BAD_UTF8, "back\\slash.txt", "..\\up.txt", "C:drive.txt"]
    for name in refused:
        write_file(a / name, name.encode("utf-8", "surrogateescape"))
    write_file(a / "ok.txt", "ok")
    write_file(a / "col:on.txt", "colon")
    try:
        engine = rig.start()
        wait_until(
            lambda: zip_names(archive) == {"ok.txt", "col:on.txt"}, message="zip gets the rest"
        )
        converge(a, b)
        for _ in range(3):  # periodic rescans and "Sync now" plan every path again
            engine.sync_now()
            assert engine.wait_idle(60)
        write_file(b / "later.txt", "later")
        wait_until(lambda: "later.txt" in zip_names(archive), message="later.txt reaches zip")
        converge(a, b)
        assert zip_names(archive) == {"ok.txt", "col:on.txt", "later.txt"}
        assert_all_available(rig)
        skipped = [a for a in engine.status().activity if a.action == "skipped"]
        assert sorted(s.path for s in skipped) == sorted(refused)
        assert {s.location for s in skipped} == {f"zip:{archive}"}
    finally:
        rig.stop()
    for name in refused:
        warnings = [
            r
            for r in caplog.records
            if r.levelno == logging.WARNING and shown(name) in r.getMessage()
        ]
        assert len(warnings) == 1, (name, [r.getMessage() for r in warnings])


def test_a_name_on_a_server_it_cannot_carry_is_warned_about_once(
    ftp_server: ThreadedFtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    write_file(ftp_server.root / "back\\slash.txt", "odd")
    write_file(ftp_server.root / "fine.txt", "ok")
    loc = ftp_server.location()
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):  # three polls
                assert set(loc.scan()) == {"fine.txt"}
    finally:
        loc.close()
    assert len([r for r in caplog.records if "slash.txt" in r.getMessage()]) == 1


# ----- messages --------------------------------------------------------------------------------


def test_a_name_with_a_line_break_is_logged_on_one_line(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    a, b, c = rig.roots
    rig.start()
    write_file(a / "two\nlines.txt", "x")
    converge(a, b, c)
    rig.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert any("'two\\nlines.txt'" in m for m in messages), messages
    assert not [m for m in messages if "\n" in m]


def test_errors_and_shown_escape_line_breaks_and_undecodable_bytes() -> None:
    assert shown("plain name.txt") == "plain name.txt"
    assert shown("a\\b") == "a\\b"
    assert shown("two\nlines") == "'two\\nlines'"
    assert shown(BAD_UTF8) == "'bad\\xff name.txt'"
    assert shown("tab\there\\") == "'tab\\there\\\\'"
    error = FileSyncError("cannot read", location="folder:/x", path="a\nb")
    assert str(error) == "folder:/x: 'a\\nb': cannot read"


# ----- the declared policies and the safety checks --------------------------------------------


@pytest.mark.parametrize(
    ("name", "folder", "zip_", "ftp"),
    [
        ("plain/x.txt", True, True, True),
        ("é ü/ümlaut.txt", True, True, True),
        ("col:on.txt", True, True, True),
        (BAD_UTF8, True, False, False),
        ("back\\slash.txt", True, False, False),
        ("..\\up.txt", True, False, False),
        ("C:drive.txt", True, False, False),
        ("two\nlines.txt", True, True, False),
        ("cr\r.txt", True, True, False),
        ("../escape.txt", False, False, False),
        ("/abs.txt", False, False, False),
        ("a//b.txt", False, False, False),
        ("nul\x00.txt", False, False, False),
        ("", False, False, False),
    ],
)
def test_each_kind_declares_the_names_it_can_hold(
    name: str, folder: bool, zip_: bool, ftp: bool
) -> None:
    assert (POSIX_NAMES.refusal(name) is None) is folder
    assert (ZIP_NAMES.refusal(name) is None) is zip_
    assert (FTP_NAMES.refusal(name) is None) is ftp


@pytest.mark.parametrize("name", ["..\\x", "a\\..\\..\\x", "C:x", "C:\\x", "../x", "/x", "a/./b"])
def test_names_from_archives_and_servers_still_never_escape(name: str) -> None:
    with pytest.raises(UnsafePath):
        check_relpath(name)


@pytest.mark.parametrize("name", ["../x", "/x", "a/./b", "a/", "x\x00"])
def test_names_unsafe_anywhere_are_refused_for_folders_too(name: str) -> None:
    with pytest.raises(UnsafePath):
        check_posix_relpath(name)


def test_a_zip_refuses_to_write_a_name_it_cannot_hold(tmp_path: Path) -> None:
    from app.locations import open_location

    loc = open_location(f"zip:{tmp_path / 'z.zip'}")
    loc.open()
    try:
        for name in (BAD_UTF8, "..\\x"):
            with pytest.raises(UnsafePath), loc.batch():
                loc.write(name, io.BytesIO(b"x"), 0)
    finally:
        loc.close()


# ----- the index -----------------------------------------------------------------------------


def test_index_keeps_non_utf8_names_and_reads_databases_written_before(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    index = StateIndex(path)
    index.put("folder:/x", "old.txt", FileMeta(1, 2, 3))
    index.mark_known("folder:/x")
    index.close()
    db = sqlite3.connect(path)  # as earlier versions stored it: TEXT paths
    assert db.execute("SELECT typeof(path) FROM files").fetchone() == ("text",)
    db.close()
    index = StateIndex(path)
    index.put("folder:/x", BAD_UTF8, FileMeta(4, 5, 6))
    index.mark_stale("folder:/x", BAD_UTF8)
    index.close()
    index = StateIndex(path)
    try:
        assert index.has_history("folder:/x")
        assert index.load("folder:/x") == {
            "old.txt": FileMeta(1, 2, 3),
            BAD_UTF8: FileMeta(4, 5, 6),
        }
        assert index.load_stale("folder:/x") == {BAD_UTF8}
        index.remove("folder:/x", BAD_UTF8)
        index.clear_stale("folder:/x", BAD_UTF8)
        index.commit()
        assert index.load("folder:/x") == {"old.txt": FileMeta(1, 2, 3)}
        assert index.load_stale("folder:/x") == set()
    finally:
        index.close()
