"""What FTP servers say about files, parsed: MLSD facts, Unix and DOS LIST lines, times.

Pure unit tests with lines as real servers (pyftpdlib, proftpd, pure-ftpd, vsftpd, IIS)
send them; no server needed.
"""

from __future__ import annotations

import calendar

import pytest

from app.locations.ftp.listing import (
    ListingParseError,
    RemoteEntry,
    format_ftp_time,
    parse_ftp_time,
    parse_list_line,
    parse_mdtm_reply,
    parse_mfmt_reply,
    parse_mlsd_line,
)

NS = 1_000_000_000
T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC
#: "Now" for LIST lines without a year: 2024-03-01 12:00 UTC.
NOW = calendar.timegm((2024, 3, 1, 12, 0, 0, 0, 0, 0))


def utc(*fields: int) -> int:
    return calendar.timegm((*fields, *(0,) * (6 - len(fields)), 0, 0, 0)) * NS


# --- MLSD -------------------------------------------------------------------------------------


def test_mlsd_file_line_gives_size_and_utc_time() -> None:
    entry = parse_mlsd_line("type=file;size=5;modify=20231114221320; a.txt")
    assert entry == RemoteEntry("a.txt", True, False, 5, T0 * NS)


def test_mlsd_fact_names_are_case_insensitive_and_fractions_dropped() -> None:
    entry = parse_mlsd_line("Type=file;Size=7;Modify=20231114221320.987;UNIX.mode=0644; b")
    assert entry == RemoteEntry("b", True, False, 7, T0 * NS)


def test_mlsd_name_keeps_spaces_semicolons_and_equals() -> None:
    entry = parse_mlsd_line("type=file;size=1;modify=20231114221320;  lead; x=y .txt")
    assert entry is not None
    assert entry.name == " lead; x=y .txt"


def test_mlsd_dir_line_is_a_folder() -> None:
    entry = parse_mlsd_line("type=dir;modify=20231114221320;perm=flcdmpe; sub dir")
    assert entry == RemoteEntry("sub dir", False, True, 0, T0 * NS)


@pytest.mark.parametrize(
    "line",
    [
        "type=cdir;modify=20231114221320; .",
        "type=pdir;modify=20231114221320; ..",
        "type=cdir;modify=20231114221320; /home/alice",  # pure-ftpd names cdir by full path
        "TYPE=PDIR;modify=20231114221320; /home",
        "type=dir;modify=20231114221320; .",
    ],
)
def test_mlsd_current_and_parent_entries_are_skipped(line: str) -> None:
    assert parse_mlsd_line(line) is None


def test_mlsd_symlink_is_neither_file_nor_folder() -> None:
    entry = parse_mlsd_line("type=OS.unix=slink:/etc/passwd;modify=20231114221320; link")
    assert entry is not None
    assert not entry.is_file and not entry.is_dir


@pytest.mark.parametrize("line", ["no-facts-here", "type=file;size=x;modify=20231114221320; f"])
def test_mlsd_garbage_raises(line: str) -> None:
    with pytest.raises(ListingParseError):
        parse_mlsd_line(line)


# --- LIST, Unix style -------------------------------------------------------------------------


def test_pyftpdlib_recent_line_gets_this_year() -> None:
    line = "-rw-r--r--   1 alice    alice           5 Feb 28 22:13 a.txt"
    assert parse_list_line(line, NOW) == RemoteEntry(
        "a.txt", True, False, 5, utc(2024, 2, 28, 22, 13)
    )


def test_recent_date_after_now_belongs_to_last_year() -> None:
    line = "-rw-r--r--   1 alice    alice           5 Nov 14 22:13 a.txt"
    entry = parse_list_line(line, NOW)
    assert entry is not None
    assert entry.mtime_ns == utc(2023, 11, 14, 22, 13)


def test_old_line_has_year_and_no_time() -> None:
    line = "-rw-rw-rw-   1 owner    group     7045120 Sep 02  2021 music.mp3"
    entry = parse_list_line(line, NOW)
    assert entry == RemoteEntry("music.mp3", True, False, 7045120, utc(2021, 9, 2))


def test_vsftpd_numeric_owner_and_folder() -> None:
    line = "drwxr-xr-x    2 1000     1000         4096 Mar 01 09:05 photos 2024"
    entry = parse_list_line(line, NOW)
    assert entry == RemoteEntry("photos 2024", False, True, 4096, utc(2024, 3, 1, 9, 5))


def test_name_with_leading_spaces_is_kept() -> None:
    line = "-rw-r--r--   1 u        g               1 Feb 28  1:02   two spaces"
    entry = parse_list_line(line, NOW)
    assert entry is not None
    assert entry.name == "  two spaces"


def test_owner_without_group_and_acl_marker() -> None:
    line = "-rw-r--r--+  1 ftp            12 Jan 05 10:00 acl.txt"
    entry = parse_list_line(line, NOW)
    assert entry == RemoteEntry("acl.txt", True, False, 12, utc(2024, 1, 5, 10, 0))


def test_symlink_name_drops_target_and_is_not_synced() -> None:
    line = "lrwxrwxrwx   1 u        g              11 Feb 28 22:13 link -> target.txt"
    entry = parse_list_line(line, NOW)
    assert entry is not None
    assert entry.name == "link"
    assert not entry.is_file and not entry.is_dir


@pytest.mark.parametrize(
    "line",
    [
        "total 42",
        "",
        "drwxr-xr-x   2 u        g            4096 Feb 28 22:13 .",
        "drwxr-xr-x   2 u        g            4096 Feb 28 22:13 ..",
    ],
)
def test_headers_and_dot_entries_are_skipped(line: str) -> None:
    assert parse_list_line(line, NOW) is None


# --- LIST, DOS / IIS style --------------------------------------------------------------------


def test_dos_file_with_pm_time() -> None:
    line = "11-14-23  10:13PM                 5 a b.txt"
    assert parse_list_line(line, NOW) == RemoteEntry(
        "a b.txt", True, False, 5, utc(2023, 11, 14, 22, 13)
    )


def test_dos_folder_with_midnight_and_four_digit_year() -> None:
    line = "02-29-2024  12:05AM       <DIR>          Reports"
    assert parse_list_line(line, NOW) == RemoteEntry(
        "Reports", False, True, 0, utc(2024, 2, 29, 0, 5)
    )


def test_dos_24_hour_clock() -> None:
    entry = parse_list_line("01-02-24  17:30                 9 x", NOW)
    assert entry is not None
    assert entry.mtime_ns == utc(2024, 1, 2, 17, 30)


def test_unknown_list_format_raises_rather_than_dropping_a_file() -> None:
    with pytest.raises(ListingParseError):
        parse_list_line("+i8388621.29609,m824255902,/,\tdev", NOW)


# --- times ------------------------------------------------------------------------------------


def test_ftp_time_round_trip_truncates_to_seconds() -> None:
    assert format_ftp_time(T0 * NS + 999_999_999) == "20231114221320"
    assert parse_ftp_time("20231114221320") == T0 * NS
    assert parse_ftp_time("20231114221320.5") == T0 * NS


@pytest.mark.parametrize("text", ["2023111422132", "2023-11-14 22:13", "20231314221320"])
def test_bad_ftp_time_raises(text: str) -> None:
    with pytest.raises(ListingParseError):
        parse_ftp_time(text)


def test_mdtm_and_mfmt_replies() -> None:
    assert parse_mdtm_reply("213 20231114221320") == T0 * NS
    assert parse_mfmt_reply("213 Modify=20231114221320; /a b.txt") == T0 * NS
    with pytest.raises(ListingParseError):
        parse_mdtm_reply("550 a.txt is not retrievable")
    with pytest.raises(ListingParseError):
        parse_mfmt_reply("213 UTIME OK")
