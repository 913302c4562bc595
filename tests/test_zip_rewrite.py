"""How a ZIP location changes its archive: one rewrite per batch, raw copies, cached directory,
crash safety, other programs writing at the same time, streaming and threads."""

from __future__ import annotations

import hashlib
import io
import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from app.errors import FileChanged, FileVanished, LocationUnavailable, WritesDropped
from app.locations.zip import archive as ziparchive
from app.locations.zip import format as zipformat
from app.watch.change import Change
from app.watch.choose import watcher_for
from tests.helpers import wait_until, write_file
from tests.test_zip_helpers import T0, put, raw_members, read, run_zip, unzip_test, zip_location

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """Where the test's archive lives (not created)."""
    return tmp_path / "arch.zip"


# --- batching and caching ------------------------------------------------------------------


def test_a_batch_costs_one_rewrite_and_single_calls_one_each(archive: Path) -> None:
    loc = zip_location(archive)
    try:
        with loc.batch():
            for i in range(30):
                put(loc, f"f{i}.txt", str(i).encode())
            loc.rename("f0.txt", "renamed.txt")
            loc.delete("f1.txt")
            loc.delete("never-there.txt")
        assert loc.rewrites == 1
        put(loc, "single.txt", b"s")
        loc.delete("single.txt")
        assert loc.rewrites == 3
        loc.delete("never-there.txt")  # nothing to do: no rewrite
        assert loc.rewrites == 3
        assert len(loc.scan()) == 29
    finally:
        loc.close()


def test_staged_changes_are_visible_inside_the_batch(archive: Path) -> None:
    loc = zip_location(archive)
    try:
        put(loc, "old.txt", b"old")
        with loc.batch():
            meta = loc.write("new.txt", io.BytesIO(b"staged"), T0)
            assert loc.stat("new.txt") == meta
            assert read(loc, "new.txt") == b"staged"
            loc.rename("old.txt", "moved.txt")
            assert read(loc, "moved.txt") == b"old"
            assert loc.stat("old.txt") is None
            with pytest.raises(FileVanished), loc.open_read("old.txt"):
                pass
            assert archive.exists() and loc.rewrites == 1  # nothing written yet
        assert loc.rewrites == 2
        assert set(loc.scan()) == {"new.txt", "moved.txt"}
    finally:
        loc.close()


def test_a_listing_handed_out_by_scan_never_changes_afterwards(archive: Path) -> None:
    loc = zip_location(archive)
    try:
        with loc.batch():
            put(loc, "a.txt", b"a")
            during = loc.scan()
            snapshot = dict(during)
            put(loc, "b.txt", b"b")
            loc.delete("a.txt")
            assert loc.stat("b.txt") is not None and loc.stat("a.txt") is None
            assert during == snapshot
            assert set(loc.scan()) == {"b.txt"}
        assert during == snapshot
    finally:
        loc.close()


def test_changes_staged_before_an_error_still_land(archive: Path) -> None:
    loc = zip_location(archive)
    try:
        with pytest.raises(RuntimeError), loc.batch():
            put(loc, "kept.txt", b"k")
            raise RuntimeError("the engine failed half-way")
        assert read(loc, "kept.txt") == b"k"
    finally:
        loc.close()


def test_idle_scan_is_one_stat_and_returns_the_same_dict(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loc = zip_location(archive)
    try:
        with loc.batch():
            for i in range(50):
                put(loc, f"f{i}.txt", b"x")
        first = loc.scan()
        stats: list[object] = []
        parses: list[object] = []
        real_stat, real_parse = os.stat, ziparchive.parse_directory
        monkeypatch.setattr(os, "stat", lambda *a, **k: stats.append(a) or real_stat(*a))
        monkeypatch.setattr(
            ziparchive, "parse_directory", lambda *a: parses.append(a) or real_parse(*a)
        )
        for _ in range(10):
            assert loc.scan() is first
        assert len(stats) == 10 and parses == []
        put(loc, "another.txt", b"y")  # our own rewrite: no re-parse either
        assert loc.scan() is not first and parses == []
        run_zip(archive, "-d", "f3.txt", cwd=archive.parent)  # someone else's change
        assert "f3.txt" not in loc.scan() and len(parses) == 1
    finally:
        loc.close()


def test_unchanged_members_are_copied_raw(archive: Path) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("level1.txt", b"text compressed at level one " * 3000, compresslevel=1)
        zf.writestr("level9.txt", b"text compressed at level nine " * 3000, compresslevel=9)
        zf.writestr("replace-me.txt", b"old")
    zf_info = {i.filename: i for i in zipfile.ZipFile(archive).infolist()}
    before = raw_members(archive)
    loc = zip_location(archive)
    try:
        with loc.batch():
            put(loc, "replace-me.txt", b"new")
            loc.rename("level9.txt", "moved/level9.txt")
    finally:
        loc.close()
    after = raw_members(archive)
    assert after["level1.txt"] == before["level1.txt"]
    assert after["moved/level9.txt"] == before["level9.txt"]
    with zipfile.ZipFile(archive) as zf:
        assert zf.getinfo("level1.txt").CRC == zf_info["level1.txt"].CRC
        assert zf.testzip() is None


def test_watcher_reports_changes_made_by_other_programs(archive: Path, tmp_path: Path) -> None:
    loc = zip_location(archive)
    changes: queue.Queue[Change] = queue.Queue()
    watcher = watcher_for(loc, changes.put, poll_interval=0.05)
    watcher.start()
    try:
        write_file(tmp_path / "by-zip.txt", "zip tool")
        run_zip(archive, "by-zip.txt", cwd=tmp_path)
        with zipfile.ZipFile(archive, "a") as zf:
            zf.writestr("by-python.txt", b"python")
        seen: set[str] = set()

        def saw_both() -> bool:
            while not changes.empty():
                seen.add(changes.get_nowait().path)
            return {"by-zip.txt", "by-python.txt"} <= seen

        wait_until(saw_both, message=lambda: f"changes for both files (got {seen})")
        assert read(loc, "by-python.txt") == b"python"
    finally:
        watcher.stop()
        loc.close()


# --- other programs writing at the same time ------------------------------------------------


def test_external_edit_during_rewrite_is_not_clobbered(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loc = zip_location(archive)
    try:
        put(loc, "ours-before.txt", b"1")
        write_file(tmp_path / "theirs.txt", "added by zip while we rewrote")
        calls: list[int] = []
        real_rewrite = ziparchive.rewrite

        def rewrite_racing_with_zip(*args: object) -> object:
            result = real_rewrite(*args)  # type: ignore[arg-type]
            calls.append(1)
            if len(calls) == 1:
                run_zip(archive, "theirs.txt", cwd=tmp_path)
            return result

        monkeypatch.setattr(ziparchive, "rewrite", rewrite_racing_with_zip)
        put(loc, "ours.txt", b"2")
        assert len(calls) == 2  # noticed, re-read, redone
        assert set(loc.scan()) == {"ours-before.txt", "ours.txt", "theirs.txt"}
    finally:
        loc.close()
    with zipfile.ZipFile(archive) as zf:
        assert zf.read("theirs.txt") == b"added by zip while we rewrote"
        assert zf.read("ours.txt") == b"2"


def test_member_changed_by_another_program_during_a_batch_keeps_their_version(
    archive: Path, tmp_path: Path
) -> None:
    loc = zip_location(archive)
    try:
        put(loc, "shared.txt", b"original")
        write_file(tmp_path / "theirs" / "shared.txt", "theirs, written meanwhile")
        with pytest.raises(WritesDropped) as dropped, loc.batch():
            put(loc, "shared.txt", b"ours")
            put(loc, "other.txt", b"unrelated")
            run_zip(archive, "shared.txt", cwd=tmp_path / "theirs")
        assert dropped.value.paths == ["shared.txt"], "the engine must learn what did not land"
    finally:
        loc.close()
    with zipfile.ZipFile(archive) as zf:
        infos = [i for i in zf.infolist() if i.filename == "shared.txt"]
        assert len(infos) == 1  # duplicates cleaned up
        assert zf.read(infos[0]) == b"theirs, written meanwhile"
        assert zf.read("other.txt") == b"unrelated"


# --- crash safety ----------------------------------------------------------------------------


_CHILD = textwrap.dedent(
    """
    import io, os, random, signal, sys
    from pathlib import Path
    from app.locations.zip import location as zipmod
    from app.locations.zip import stream as zipstream
    from app.locations.zip.location import ZipLocation

    archive, progress, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

    def die(*_a, **_k):
        os.kill(os.getpid(), signal.SIGKILL)

    if kill_at == "mid-copy":
        real_copy = zipstream.ArchiveWriter.copy
        def copy(self, *a):
            real_copy(self, *a)
            die()
        zipstream.ArchiveWriter.copy = copy
    elif kill_at == "before-fsync":
        zipmod.os.fsync = die
    elif kill_at in ("before-replace", "after-replace"):
        real_replace = os.replace
        def replace(*a):
            if kill_at == "after-replace":
                real_replace(*a)
            die()
        zipmod.os.replace = replace
    elif kill_at.startswith("step-"):  # die at the n-th write/copy/fsync/replace
        fatal, steps = int(kill_at[5:]), [0]
        def counted(real):
            def step(*a, **k):
                steps[0] += 1
                if steps[0] == fatal:
                    die()
                return real(*a, **k)
            return step
        zipstream._pwrite_all = counted(zipstream._pwrite_all)
        os.copy_file_range = counted(os.copy_file_range)
        os.fsync = counted(os.fsync)
        os.replace = counted(os.replace)

    loc = ZipLocation(archive, key="zip:" + str(archive), name="zip:" + str(archive))
    loc.open()
    rng = random.Random(os.getpid())
    done = 0
    while True:
        with loc.batch():
            for _ in range(3):
                loc.write(f"f{rng.randrange(40)}.bin", io.BytesIO(rng.randbytes(60_000)), 0)
            names = sorted(loc.scan())
            victim, mover = rng.sample([n for n in names if n != "big.bin"], 2)
            loc.delete(victim)
            loc.rename(mover, f"r{rng.randrange(40)}.bin")
        done += 1
        progress.write_text(str(done))
    """
)


def _seed_archive(archive: Path) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("big.bin", random.Random(1).randbytes(8_000_000), zipfile.ZIP_STORED)
        for i in range(40):
            zf.writestr(f"f{i}.bin", b"seed" * 1000)


def _run_child(archive: Path, progress: Path, kill_at: str) -> subprocess.Popen[bytes]:
    """Start a process that rewrites ``archive`` in a loop; its errors go to ``progress.err``."""
    with progress.with_suffix(".err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(archive), str(progress), kill_at],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _child_error(progress: Path) -> str:
    err = progress.with_suffix(".err")
    return err.read_text()[-2000:] if err.exists() else ""


def _assert_intact(archive: Path, big: bytes) -> None:
    unzip_test(archive)
    loc = zip_location(archive)
    try:
        assert hashlib.sha256(read(loc, "big.bin")).digest() == hashlib.sha256(big).digest()
    finally:
        loc.close()


@pytest.mark.slow
def test_kill_at_random_points_never_leaves_a_broken_archive(tmp_path: Path) -> None:
    """Odd rounds: the child kills itself at a random I/O step; even: we kill it from outside."""
    archive = tmp_path / "arch.zip"
    _seed_archive(archive)
    big = random.Random(1).randbytes(8_000_000)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)  # printed on failure, so a failing sequence can be replayed
    for round_ in range(8):
        progress = tmp_path / f"progress{round_}"
        if round_ % 2:
            child = _run_child(archive, progress, f"step-{rng.randint(1, 120)}")
            try:
                assert child.wait(timeout=120) == -signal.SIGKILL, _child_error(progress)
            finally:
                child.kill()
                child.wait(timeout=30)
        else:
            child = _run_child(archive, progress, "none")
            target = rng.randint(1, 6)
            try:
                wait_until(
                    lambda p=progress, t=target: p.exists() and int(p.read_text() or 0) >= t,
                    message=lambda r=round_, t=target, p=progress: (
                        f"round {r}: {t} batches written by the child {_child_error(p)}"
                    ),
                )
                child.send_signal(signal.SIGKILL)
            finally:
                child.kill()
                child.wait(timeout=30)
        try:
            _assert_intact(archive, big)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}, round {round_}: {exc}") from exc


@pytest.mark.parametrize("kill_at", ["mid-copy", "before-fsync", "before-replace", "after-replace"])
def test_kill_at_each_step_of_a_rewrite_leaves_old_or_new_archive(
    tmp_path: Path, kill_at: str
) -> None:
    archive = tmp_path / "arch.zip"
    _seed_archive(archive)
    before = archive.read_bytes()
    child = _run_child(archive, tmp_path / "progress", kill_at)
    try:
        assert child.wait(timeout=120) == -signal.SIGKILL, _child_error(tmp_path / "progress")
    finally:
        child.kill()
        child.wait(timeout=30)
    _assert_intact(archive, random.Random(1).randbytes(8_000_000))
    if kill_at == "after-replace":
        assert archive.read_bytes() != before
    else:
        assert archive.read_bytes() == before
    # the staging file was unlinked at once; only the rewrite's temp file may be left
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".filesync")]
    assert all(n.endswith(".zip") for n in leftovers)
    loc = zip_location(archive)  # leftovers older than stale_temp_age are removed on open
    loc.close()


def test_stale_rewrite_temp_files_are_removed_on_open(archive: Path) -> None:
    stale = archive.parent / f".filesync-tmp-{archive.name}-0123456789ab.zip"
    fresh = archive.parent / f".filesync-tmp-{archive.name}-ba9876543210.zip"
    stale.write_bytes(b"half a rewrite")
    fresh.write_bytes(b"someone else's rewrite in progress")
    os.utime(stale, (0, 0))
    loc = zip_location(archive)
    loc.close()
    assert not stale.exists() and fresh.exists()


# --- streaming, symlinks, threads ----------------------------------------------------------


class _Pattern(io.RawIOBase):
    """``size`` bytes of incompressible-ish data, generated on the fly and hashed as read."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.left = size
        self.block = random.Random(7).randbytes(1 << 20)
        self.counter = 0
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self.left, len(self.block))
        self.counter += 1
        chunk = self.counter.to_bytes(8, "little") + self.block[8:n]
        chunk = chunk[:n]
        b[:n] = chunk
        self.sha.update(chunk)
        self.left -= n
        return n


@pytest.mark.slow
def test_large_member_streams_in_and_out_with_bounded_memory(archive: Path) -> None:
    size = 50 * 1024 * 1024
    loc = zip_location(archive)
    try:
        source = _Pattern(size)
        tracemalloc.start()
        try:
            meta = loc.write("big.bin", io.BufferedReader(source), T0)
            put(loc, "small.txt", b"a rewrite that copies big.bin raw")
            digest = hashlib.sha256()
            with loc.open_read("big.bin") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert meta.size == size
        assert digest.digest() == source.sha.digest()
        assert peak < 12 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"
    finally:
        loc.close()


def test_symlinked_archive_is_rewritten_through_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real" / "a.zip"
    real.parent.mkdir()
    link = tmp_path / "link.zip"
    link.symlink_to(real)
    loc = zip_location(link)
    try:
        put(loc, "x.txt", b"x")
    finally:
        loc.close()
    assert link.is_symlink()
    with zipfile.ZipFile(real) as zf:
        assert zf.namelist() == ["x.txt"]


def test_poller_scans_while_engine_writes(archive: Path) -> None:
    loc = zip_location(archive)
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                listing = loc.scan()
                for name in list(listing)[:3]:
                    loc.stat(name)
            except BaseException as exc:
                errors.append(exc)
                return

    poller = threading.Thread(target=poll, name="test poller")
    poller.start()
    try:
        for b in range(20):
            with loc.batch():
                for i in range(10):
                    put(loc, f"b{b}/f{i}.txt", f"{b}-{i}".encode())
                if b:
                    loc.rename(f"b{b - 1}/f0.txt", f"moved/{b}.txt")
                    loc.delete(f"b{b - 1}/f1.txt")
            assert read(loc, f"b{b}/f9.txt") == f"{b}-9".encode()
    finally:
        stop.set()
        poller.join()
        loc.close()
    assert errors == []
    assert loc.rewrites == 20
    unzip_test(archive)


def test_zip64_limits_can_be_crossed_by_offsets(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member whose local header lies past the (lowered) 4 GiB mark needs a ZIP64 offset."""
    monkeypatch.setattr(zipformat, "ZIP64_LIMIT", 50_000)
    loc = zip_location(archive)
    try:
        with loc.batch():
            for i in range(4):
                put(loc, f"f{i}.bin", random.Random(i).randbytes(20_000))
        put(loc, "late.txt", b"late")
    finally:
        loc.close()
    unzip_test(archive)
    with zipfile.ZipFile(archive) as zf:
        assert zf.getinfo("late.txt").header_offset > 50_000


# --- what the engine relies on ---------------------------------------------------------------


def test_adopt_refuses_an_archive_created_for_a_known_location(archive: Path) -> None:
    loc = zip_location(archive)  # the archive did not exist: created empty
    try:
        with pytest.raises(LocationUnavailable, match="missing"):
            loc.adopt(has_history=True)
        assert not archive.exists()
    finally:
        loc.close()
    fresh = zip_location(archive)
    try:
        fresh.adopt(has_history=False)
        fresh.adopt(has_history=True)  # it exists now: nothing to refuse
        assert archive.exists()
        fresh.check_available()
        archive.unlink()
        with pytest.raises(LocationUnavailable):
            fresh.check_available()
    finally:
        fresh.close()


def test_guarded_write_and_delete_refuse_a_changed_file(archive: Path) -> None:
    loc = zip_location(archive)
    try:
        put(loc, "f.txt", b"v1")
        seen = loc.stat("f.txt")
        put(loc, "f.txt", b"v2 saved by someone", T0 + 4_000_000_000)
        with pytest.raises(FileChanged), loc.batch():
            loc.guarded_write("f.txt", io.BytesIO(b"engine"), T0, seen)
        with pytest.raises(FileChanged), loc.batch():
            loc.guarded_delete("f.txt", seen)
        assert read(loc, "f.txt") == b"v2 saved by someone"
        with loc.batch():
            loc.guarded_write("new.txt", io.BytesIO(b"n"), T0, None)
            loc.guarded_delete("f.txt", loc.stat("f.txt"))
        assert set(loc.scan()) == {"new.txt"}
    finally:
        loc.close()


def test_a_failed_rewrite_keeps_the_staged_changes_for_the_next_batch(
    archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loc = zip_location(archive)
    try:
        real_replace = ziparchive.ArchiveFile.replace
        failures = [LocationUnavailable("disk full")]

        def replace_failing_once(self: ziparchive.ArchiveFile, items: object) -> bool:
            if failures:
                raise failures.pop()
            return real_replace(self, items)  # type: ignore[arg-type]

        monkeypatch.setattr(ziparchive.ArchiveFile, "replace", replace_failing_once)
        with pytest.raises(LocationUnavailable):
            put(loc, "first.txt", b"1")
        assert "first.txt" in loc.scan()  # still staged: the engine already recorded it
        put(loc, "second.txt", b"2")
        assert loc.rewrites == 1
    finally:
        loc.close()
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["first.txt", "second.txt"]
