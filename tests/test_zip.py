"""ZIP locations against real archives: made by Info-ZIP ``zip`` and by Python, damaged ones,
malicious names, timestamps, names and ZIP64."""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import CorruptArchive, FileVanished, LocationUnavailable
from app.locations.zip import format as zipformat
from app.locations.zip.location import ZipLocation
from tests.helpers import write_file
from tests.test_zip_helpers import (
    T0,
    NonSeekable,
    put,
    raw_members,
    read,
    run_zip,
    unzip_test,
    zip_location,
)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """Where the test's archive lives (not created)."""
    return tmp_path / "arch.zip"


@pytest.fixture
def set_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run in a zone far from UTC (for us and for child processes); restored afterwards."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# --- identity ------------------------------------------------------------------------------


def test_key_name_and_sanitised_label(tmp_path: Path) -> None:
    loc = zip_location(tmp_path / "My Photos (2024).zip")
    try:
        assert loc.key == loc.name == f"zip:{tmp_path / 'My Photos (2024).zip'}"
        assert loc.label == "My_Photos_2024"
        assert loc.capabilities.mtime_precision_ns == 2_000_000_000
        assert loc.capabilities.can_rename and loc.capabilities.can_set_mtime
        assert not loc.capabilities.native_events
    finally:
        loc.close()


# --- creation, missing folders, damaged files -------------------------------------------------


def test_missing_archive_is_created_empty(archive: Path) -> None:
    loc = zip_location(archive)
    loc.close()
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist() == []


def test_missing_parent_folder_is_a_clear_error(tmp_path: Path) -> None:
    archive = tmp_path / "no" / "such" / "a.zip"
    loc = ZipLocation(archive, key=f"zip:{archive}", name=f"zip:{archive}")
    with pytest.raises(LocationUnavailable, match="does not exist") as info:
        loc.open()
    assert str(tmp_path / "no" / "such") in str(info.value)
    assert not (tmp_path / "no").exists()


def test_filesystems_without_links_or_chmod_still_work(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAT and exFAT (USB sticks) refuse hard links and chmod."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)
    monkeypatch.setattr(os, "fchmod", refuse)
    loc = zip_location(archive)
    try:
        put(loc, "a.txt", b"a")
        assert read(loc, "a.txt") == b"a"
    finally:
        loc.close()
    unzip_test(archive)


def test_a_folder_at_the_path_is_a_clear_error(archive: Path) -> None:
    archive.mkdir()
    loc = ZipLocation(archive, key=f"zip:{archive}", name=f"zip:{archive}")
    with pytest.raises(LocationUnavailable, match="folder, not a ZIP archive"):
        loc.open()
    assert archive.is_dir() and not any(archive.iterdir())


def _damaged(kind: str, archive: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        for i in range(5):
            zf.writestr(f"f{i}.txt", os.urandom(2000))
    data = good.read_bytes()
    if kind == "text":
        archive.write_text("this is a shopping list, not an archive\n")
    elif kind == "empty":
        archive.write_bytes(b"")
    elif kind == "truncated":
        archive.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_tail":
        archive.write_bytes(data[:-10])
    elif kind == "bad_directory":
        cd = data.rfind(b"PK\x01\x02")
        archive.write_bytes(data[:cd] + b"XX" + data[cd + 2 :])
    elif kind == "overlapping":
        # the central directory points two members at the same local header
        first = data.find(b"PK\x01\x02")
        second = data.find(b"PK\x01\x02", first + 4)
        fixed = bytearray(data)
        fixed[second + 42 : second + 46] = struct.pack("<I", 0)
        archive.write_bytes(bytes(fixed))


@pytest.mark.parametrize(
    "kind", ["text", "empty", "truncated", "truncated_tail", "bad_directory", "overlapping"]
)
def test_damaged_file_is_unavailable_and_untouched(
    kind: str, archive: Path, tmp_path: Path
) -> None:
    _damaged(kind, archive, tmp_path)
    before = archive.read_bytes()
    loc = ZipLocation(archive, key=f"zip:{archive}", name=f"zip:{archive}")
    with pytest.raises(CorruptArchive) as info:
        loc.open()
    message = str(info.value)
    assert "\n" not in message
    assert str(archive) in message and "untouched" in message
    with pytest.raises(CorruptArchive):
        loc.scan()
    with pytest.raises(CorruptArchive):
        put(loc, "new.txt", b"must not be written")
    loc.close()
    assert archive.read_bytes() == before
    assert [p.name for p in archive.parent.iterdir() if p.name.startswith(".filesync")] == []


def test_archive_damaged_while_running_is_unavailable_then_recovers(archive: Path) -> None:
    loc = zip_location(archive)
    try:
        put(loc, "a.txt", b"a")
        good = archive.read_bytes()
        archive.write_bytes(b"garbage" * 10)
        with pytest.raises(CorruptArchive):
            loc.scan()
        with pytest.raises(CorruptArchive):
            put(loc, "b.txt", b"b")
        assert archive.read_bytes() == b"garbage" * 10
        archive.write_bytes(good)
        assert set(loc.scan()) == {"a.txt"}
    finally:
        loc.close()


def test_vanished_archive_is_unavailable_not_empty(archive: Path) -> None:
    loc = zip_location(archive)
    try:
        put(loc, "a.txt", b"a")
        archive.unlink()
        with pytest.raises(LocationUnavailable, match="disappeared"):
            loc.scan()
    finally:
        loc.close()


# --- interoperability ----------------------------------------------------------------------


def test_archive_made_by_zip_tool_is_listed_without_directories(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_file(src / "top.txt", "top", mtime=T0 / 1e9 + 1)
    write_file(src / "sub" / "deep" / "x.bin", b"\x00" * 5000, mtime=T0 / 1e9 + 3)
    write_file(src / "unicode-é-日本語.txt", "ü")
    run_zip("-r", tmp_path / "a.zip", ".", cwd=src)
    loc = zip_location(tmp_path / "a.zip")
    try:
        listing = loc.scan()
        assert set(listing) == {"top.txt", "sub/deep/x.bin", "unicode-é-日本語.txt"}
        assert listing["top.txt"].mtime_ns == T0 + 1_000_000_000  # from the 0x5455 field
        assert listing["sub/deep/x.bin"].size == 5000
        assert read(loc, "sub/deep/x.bin") == b"\x00" * 5000
        assert read(loc, "unicode-é-日本語.txt") == "ü".encode()
    finally:
        loc.close()


def test_our_archive_passes_unzip_and_zipfile(archive: Path) -> None:
    loc = zip_location(archive)
    try:
        with loc.batch():
            put(loc, "a.txt", b"a" * 10000)
            put(loc, "dir/b.bin", os.urandom(70000))
            put(loc, "empty.txt", b"")
            put(loc, "日本語/ファイル.txt", b"jp")
        with loc.batch():
            loc.rename("a.txt", "renamed/a.txt")
            loc.delete("empty.txt")
    finally:
        loc.close()
    unzip_test(archive)
    with zipfile.ZipFile(archive) as zf:
        names = {i.filename: i for i in zf.infolist()}
        assert set(names) == {"renamed/a.txt", "dir/b.bin", "日本語/ファイル.txt"}
        assert names["日本語/ファイル.txt"].flag_bits & 0x800  # the UTF-8 flag
        assert names["dir/b.bin"].compress_type == zipfile.ZIP_DEFLATED
        assert zf.read("renamed/a.txt") == b"a" * 10000


def test_extended_timestamp_round_trip_and_unzip_restores_it(archive: Path, tmp_path: Path) -> None:
    mtime = T0 + 7_000_000_000 + 123_456_789  # odd second, with a fraction
    loc = zip_location(archive)
    try:
        put(loc, "t.txt", b"time", mtime)
        assert loc.scan()["t.txt"].mtime_ns == T0 + 7_000_000_000
    finally:
        loc.close()
    with zipfile.ZipFile(archive) as zf:
        assert b"UT" in zf.getinfo("t.txt").extra  # 0x5455, little-endian
    out = tmp_path / "out"
    subprocess.run(["unzip", "-q", str(archive), "-d", str(out)], check=True, timeout=60)
    assert (out / "t.txt").stat().st_mtime_ns == T0 + 7_000_000_000


@pytest.mark.usefixtures("set_tz")
def test_dos_time_fallback_for_zip_x_archives_is_local_time(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_file(src / "f.txt", "f", mtime=T0 / 1e9 + 4)
    run_zip("-X", tmp_path / "a.zip", "f.txt", cwd=src)  # -X: no extra fields at all
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.getinfo("f.txt").extra == b""
    loc = zip_location(tmp_path / "a.zip")
    try:
        assert abs(loc.scan()["f.txt"].mtime_ns - (T0 + 4_000_000_000)) < 2_000_000_000
    finally:
        loc.close()


@pytest.mark.usefixtures("set_tz")
def test_written_dos_time_is_local_time(archive: Path) -> None:
    loc = zip_location(archive)
    try:
        put(loc, "f.txt", b"f", T0 + 4_000_000_000)
    finally:
        loc.close()
    with zipfile.ZipFile(archive) as zf:
        stamp = zf.getinfo("f.txt").date_time
    assert stamp == time.localtime(T0 // 1_000_000_000 + 4)[:6]


def test_ntfs_timestamp_is_read_when_no_unix_one(archive: Path) -> None:
    info = zipfile.ZipInfo("n.txt", date_time=(2001, 1, 1, 0, 0, 0))
    ticks = T0 // 100 + 116_444_736_000_000_000 + 5
    info.extra = struct.pack("<HHIHHQQQ", 0x000A, 32, 0, 1, 24, ticks, ticks, ticks)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, b"n")
    loc = zip_location(archive)
    try:
        assert loc.scan()["n.txt"].mtime_ns == T0 + 500
    finally:
        loc.close()


# --- names ---------------------------------------------------------------------------------


UNSAFE = ["../evil.txt", "/etc/evil", "a/../../evil", "c:/evil.txt", "back\\slash.txt", "a\x00b"]


def _malicious(archive: Path) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good.txt", b"good")
        for i, name in enumerate(UNSAFE):
            info = zipfile.ZipInfo("placeholder")
            info.filename = name  # zipfile would clean some names; keep them raw
            zf.writestr(info, f"evil {i}".encode())


def test_unsafe_member_names_are_refused_and_kept_untouched(
    archive: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _malicious(archive)
    evil_before = {k: v for k, v in raw_members(archive).items() if k != "good.txt"}
    caplog.set_level(logging.WARNING)
    loc = zip_location(archive)
    try:
        assert set(loc.scan()) == {"good.txt"}
        assert sum("unsafe member name" in r.message for r in caplog.records) == len(UNSAFE)
        for name in UNSAFE:
            assert loc.stat(name) is None
            with pytest.raises(FileVanished), loc.open_read(name):
                pass
        put(loc, "new.txt", b"new")  # a rewrite
        loc.scan()
        assert sum("unsafe member name" in r.message for r in caplog.records) == len(UNSAFE)
    finally:
        loc.close()
    after = raw_members(archive)
    assert {k: v for k, v in after.items() if k not in ("good.txt", "new.txt")} == evil_before
    assert not list(archive.parent.parent.glob("evil*"))


def test_duplicate_names_last_wins_and_rewrite_cleans_up(archive: Path) -> None:
    with warnings.catch_warnings(), zipfile.ZipFile(archive, "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate we want
        zf.writestr("dup.txt", b"first")
        zf.writestr("other.txt", b"other")
        zf.writestr("dup.txt", b"second, the one that counts")
    loc = zip_location(archive)
    try:
        assert loc.scan()["dup.txt"].size == len(b"second, the one that counts")
        assert read(loc, "dup.txt") == b"second, the one that counts"
        put(loc, "new.txt", b"n")
    finally:
        loc.close()
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["dup.txt", "new.txt", "other.txt"]
        assert zf.read("dup.txt") == b"second, the one that counts"


def test_rename_of_zip_tool_unicode_member_keeps_new_name(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_file(src / "é.txt", "accent")
    run_zip(tmp_path / "a.zip", "é.txt", cwd=src)
    loc = zip_location(tmp_path / "a.zip")
    try:
        with loc.batch():
            loc.rename("é.txt", "日本.txt")
        assert set(loc.scan()) == {"日本.txt"}
    finally:
        loc.close()
    unzip_test(tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.namelist() == ["日本.txt"]


def test_delete_drops_directory_entries_it_leaves_empty(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_file(src / "gone" / "deeper" / "only.txt", "x")
    write_file(src / "kept" / "a.txt", "a")
    write_file(src / "kept" / "b.txt", "b")
    (src / "empty-dir").mkdir()
    run_zip("-r", tmp_path / "a.zip", ".", cwd=src)
    loc = zip_location(tmp_path / "a.zip")
    try:
        with loc.batch():
            loc.delete("gone/deeper/only.txt")
            loc.delete("kept/a.txt")
    finally:
        loc.close()
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert sorted(zf.namelist()) == ["empty-dir/", "kept/", "kept/b.txt"]


def test_symlink_members_are_skipped_and_kept(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_file(src / "real.txt", "real")
    (src / "link.txt").symlink_to("real.txt")
    run_zip("-y", tmp_path / "a.zip", "real.txt", "link.txt", cwd=src)  # -y: store the link
    loc = zip_location(tmp_path / "a.zip")
    try:
        assert set(loc.scan()) == {"real.txt"}
        put(loc, "new.txt", b"n")
    finally:
        loc.close()
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.read("link.txt") == b"real.txt"
        assert (zf.getinfo("link.txt").external_attr >> 16) & 0o170000 == 0o120000


# --- odd but valid layouts -------------------------------------------------------------------


def test_data_descriptor_members_survive_rewrite_and_rename(archive: Path) -> None:
    with archive.open("wb") as raw, zipfile.ZipFile(NonSeekable(raw), "w") as zf:  # type: ignore[arg-type]
        zf.writestr("dd.txt", b"descriptor " * 500, zipfile.ZIP_DEFLATED)
        zf.writestr("keep.txt", b"keep")
    with zipfile.ZipFile(archive) as zf:
        assert zf.getinfo("dd.txt").flag_bits & 0x8
    loc = zip_location(archive)
    try:
        with loc.batch():
            loc.rename("dd.txt", "moved/dd.txt")
            put(loc, "new.txt", b"new")
        assert read(loc, "moved/dd.txt") == b"descriptor " * 500
    finally:
        loc.close()
    unzip_test(archive)


def test_archive_streamed_by_zip_to_stdout_is_read_and_rewritten(tmp_path: Path) -> None:
    """``zip - files > out.zip`` cannot seek, so every member carries a data descriptor."""
    src = tmp_path / "src"
    write_file(src / "one.txt", "one " * 1000)
    write_file(src / "two.txt", "two")
    archive = tmp_path / "streamed.zip"
    piped = subprocess.run(  # through a pipe: zip cannot seek back to fill in sizes
        ["zip", "-q", "-", "one.txt", "two.txt"], cwd=src, capture_output=True, check=True
    )
    archive.write_bytes(piped.stdout)
    with zipfile.ZipFile(archive) as zf:
        assert all(i.flag_bits & 0x8 for i in zf.infolist())
    loc = zip_location(archive)
    try:
        assert read(loc, "one.txt") == b"one " * 1000
        with loc.batch():
            loc.rename("two.txt", "sub/two.txt")
            put(loc, "three.txt", b"three")
    finally:
        loc.close()
    unzip_test(archive)


def test_self_extractor_stub_is_kept(tmp_path: Path) -> None:
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("a.txt", b"a")
    stub = b"#!/bin/sh\necho stub\nexit 0\n" * 20
    archive = tmp_path / "sfx.zip"
    archive.write_bytes(stub + inner.read_bytes())  # offsets not adjusted: they are shifted
    loc = zip_location(archive)
    try:
        assert read(loc, "a.txt") == b"a"
        put(loc, "b.txt", b"b")
        assert set(loc.scan()) == {"a.txt", "b.txt"}
    finally:
        loc.close()
    assert archive.read_bytes().startswith(stub)
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None and zf.read("a.txt") == b"a"


def test_other_compression_methods_are_read_and_kept(archive: Path) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("b.txt", b"bzip2 " * 1000, zipfile.ZIP_BZIP2)
        zf.writestr("s.txt", b"stored " * 100, zipfile.ZIP_STORED)
    loc = zip_location(archive)
    try:
        assert read(loc, "b.txt") == b"bzip2 " * 1000
        assert read(loc, "s.txt") == b"stored " * 100
        put(loc, "n.txt", b"n")
    finally:
        loc.close()
    with zipfile.ZipFile(archive) as zf:
        assert zf.getinfo("b.txt").compress_type == zipfile.ZIP_BZIP2
        assert zf.testzip() is None


# --- ZIP64 ---------------------------------------------------------------------------------


def test_zip64_fields_written_and_read(archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lowered limits make small members need ZIP64 sizes, offsets and end records."""
    monkeypatch.setattr(zipformat, "ZIP64_LIMIT", 1000)
    monkeypatch.setattr(zipformat, "ZIP64_COUNT_LIMIT", 3)
    payload = {f"m{i}.bin": os.urandom(3000 + i) for i in range(5)}
    loc = zip_location(archive)
    try:
        with loc.batch():
            for name, data in payload.items():
                put(loc, name, data)
        with loc.batch():
            loc.rename("m0.bin", "r0.bin")
    finally:
        loc.close()
    unzip_test(archive)
    again = zip_location(archive)
    try:
        assert {n: m.size for n, m in again.scan().items()} == {
            ("r0.bin" if n == "m0.bin" else n): len(d) for n, d in payload.items()
        }
        assert read(again, "m4.bin") == payload["m4.bin"]
    finally:
        again.close()


def test_zipfile_force_zip64_members_are_read(archive: Path) -> None:
    with zipfile.ZipFile(archive, "w") as zf, zf.open("z.bin", "w", force_zip64=True) as f:
        f.write(b"zip64 " * 1000)
    loc = zip_location(archive)
    try:
        assert read(loc, "z.bin") == b"zip64 " * 1000
        put(loc, "n.txt", b"n")
    finally:
        loc.close()
    unzip_test(archive)


@pytest.mark.slow
def test_more_than_65535_entries(archive: Path) -> None:
    count = 65_600
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for i in range(count):
            zf.writestr(f"d{i // 1000}/f{i}", b"")
    loc = zip_location(archive)
    try:
        assert len(loc.scan()) == count
        put(loc, "extra.txt", b"one more")
        assert len(loc.scan()) == count + 1
    finally:
        loc.close()
    with zipfile.ZipFile(archive) as zf:
        assert len(zf.infolist()) == count + 1
        assert zf.read("extra.txt") == b"one more"
