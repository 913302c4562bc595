"""The hub journal: parsing, tags, and what reading it costs a poll (real pyftpdlib servers)."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from app.locations.base import FileMeta
from app.locations.ftp.journal import (
    JOURNAL_DIR,
    HubJournal,
    Version,
    format_entry,
    parse_journal,
)
from app.locations.ftp.location import FtpLocation
from tests.ftp_server import PERM, ThreadedFtpServer
from tests.writes import T0
from tests.writes import write_bytes as write


def test_only_complete_valid_lines_are_read() -> None:
    good = format_entry("a b.txt", Version(3, 17, "v1")) + format_entry("gone.txt", None)
    torn = b'{"p": "x.txt", "s": 1, "t"'
    entries, used = parse_journal(good.encode() + b"not json\n" + torn)
    assert entries == {"a b.txt": Version(3, 17, "v1"), "gone.txt": None}
    assert used == len(good) + len("not json\n")


def test_each_upload_changes_the_tag_of_a_same_size_same_second_file() -> None:
    journal = HubJournal("test")
    assert journal.tag("doc.txt", 5, T0) == 0  # no entry: the listing's own tag applies
    first = journal.record("doc.txt", FileMeta(5, T0 + 100))
    second = journal.record("doc.txt", FileMeta(5, T0 + 900_000_000))
    assert first.tag != second.tag
    assert 0 not in (first.tag, second.tag)
    assert journal.tag("doc.txt", 5, T0) == second.tag  # the listing shows the whole second
    assert journal.tag("doc.txt", 6, T0) == 0  # someone else's file: the entry does not match
    journal.forget("doc.txt")
    assert journal.tag("doc.txt", 5, T0) == 0


def test_an_idle_poll_does_not_read_the_journal(ftp_server: ThreadedFtpServer) -> None:
    writer, reader = ftp_server.location(), ftp_server.location()
    assert isinstance(writer, FtpLocation) and isinstance(reader, FtpLocation)
    try:
        for i in range(300):  # one batch: one append
            write(writer, f"f{i % 3}.txt", b"%03d" % i)
        first = reader.scan()
        start = reader.request_count
        assert reader.scan() == first
        idle = reader.request_count - start
        write(writer, "f0.txt", b"new")  # same size, same second: only the journal differs
        start = reader.request_count
        changed = reader.scan()
        assert changed["f0.txt"].same_version(first["f0.txt"])
        assert changed["f0.txt"].tag != first["f0.txt"].tag
        assert reader.request_count - start <= idle + 4  # TYPE, PASV, REST, RETR of the tail
        start = reader.request_count
        assert reader.scan() == changed
        assert reader.request_count - start == idle
    finally:
        writer.close()
        reader.close()


def test_a_compacted_journal_keeps_every_tag(
    ftp_server: ThreadedFtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.locations.remote.hubjournal.COMPACT_AT", 500)
    writer, reader = ftp_server.location(), ftp_server.location()
    assert isinstance(writer, FtpLocation) and isinstance(reader, FtpLocation)
    try:
        for i in range(12):
            write(writer, f"f{i % 2}.txt", b"%02d" % i)
        before = reader.scan()
        for i in range(12):
            write(writer, "other.txt", b"%02d" % i)
        after = reader.scan()
        assert {p: after[p] for p in before} == before
        journals = os.listdir(ftp_server.root / JOURNAL_DIR)
        assert len(journals) == 1 and not journals[0].endswith("-0.jsonl"), journals
    finally:
        writer.close()
        reader.close()


def test_housekeeping_removes_idle_journals_that_describe_no_listed_file(
    ftp_server: ThreadedFtpServer,
) -> None:
    folder = ftp_server.root / JOURNAL_DIR
    for name, path in (("dead", "deleted.txt"), ("live", "kept.txt")):
        run = ftp_server.location()
        assert isinstance(run, FtpLocation)
        write(run, path, b"data")
        run.close()
        (folder / f"{run._remote.journal.writer}-0.jsonl").rename(folder / f"{name}-0.jsonl")
    (ftp_server.root / "deleted.txt").unlink()
    old = time.time() - 2 * 86400
    for journal in folder.iterdir():
        os.utime(journal, (old, old))
    loc = ftp_server.location()
    assert isinstance(loc, FtpLocation)
    try:
        loc.scan()
        loc.housekeeping()
        assert sorted(os.listdir(folder)) == ["live-0.jsonl"]
    finally:
        loc.close()


def test_a_server_refusing_appends_still_takes_uploads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("tests.ftp_server.PERM", PERM.replace("a", ""))  # no APPE
    server = ThreadedFtpServer(tmp_path / "no-append")
    server.start()
    loc = server.location()
    assert isinstance(loc, FtpLocation)
    try:
        first = write(loc, "a.txt", b"one")
        second = write(loc, "b.txt", b"two")
        listing = loc.scan()  # tags from the listing alone, as each upload reported them
        assert (listing["a.txt"], listing["b.txt"]) == (first, second)
        assert (server.root / "b.txt").read_bytes() == b"two"
        warnings = [r for r in caplog.records if "cannot write the journal" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        loc.close()
        server.stop()


def test_a_replacement_listed_like_the_old_file_is_journaled_at_once(
    ftp_list_server: ThreadedFtpServer,
) -> None:
    """Not at the end of the batch: a crash in between would leave the others the old save."""
    writer, reader = ftp_list_server.location(), ftp_list_server.location()
    assert isinstance(writer, FtpLocation) and isinstance(reader, FtpLocation)
    try:
        write(writer, "doc.txt", b"one")
        before = reader.scan()["doc.txt"]
        with writer.batch():
            for attempt in range(5):  # the server stamps its own clock: retry across a second
                current = writer.stat("doc.txt")
                meta = writer.guarded_write("doc.txt", io.BytesIO(b"%03d" % attempt), T0, current)
                if current is not None and current.same_version(meta):
                    break
            else:
                pytest.fail("no two uploads within one second")
            after = reader.scan()["doc.txt"]
            assert after.same_version(meta)
            assert after.tag == meta.tag != before.tag
    finally:
        writer.close()
        reader.close()


def test_the_journal_works_over_tls(ftps_server: ThreadedFtpServer) -> None:
    writer, reader = ftps_server.location(), ftps_server.location()
    assert isinstance(writer, FtpLocation) and isinstance(reader, FtpLocation)
    try:
        write(writer, "doc.txt", b"one", T0)
        before = reader.scan()["doc.txt"]
        write(writer, "doc.txt", b"two", T0 + 500_000_000)
        after = reader.scan()["doc.txt"]
        assert after.same_version(before) and after.tag != before.tag
        assert reader.scan() == {"doc.txt": after}
    finally:
        writer.close()
        reader.close()
