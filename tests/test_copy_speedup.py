"""A folder's group of copies through the C speedup (``_copy.c``) and through Python alike.

Small files whose source is a folder on this computer are copied and renamed into place by C
code with the interpreter lock released; every file it cannot do goes through the Python
steps, which stay the reference. These tests write the same groups both ways and compare what
a user sees: the same files, bytes, mtimes and metas, and the same error for each odd case (a
source that vanished or is a link, a file saved at the name meanwhile, a folder in the way).
CI must run the C path: the first test fails when it did not build, unless
``FILESYNC_PURE_PYTHON=1`` asks for the fallback on purpose.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import BinaryIO, TypeVar

import pytest

from app.engine.engine import Engine
from app.locations import LocationOptions, open_location
from app.locations.base import TEMP_PREFIX, FileMeta, LocalRoot, Location, WriteJob
from app.locations.folder import fastcopy
from tests.engine_fixtures import Rig
from tests.helpers import tree, write_file

SECOND = 1_000_000_000
T = TypeVar("T")
#: "c": as the engine's jobs go (each source opened beneath its root folder with openat2);
#: "c-folders": as where openat2 is missing (each source's folder reached first);
#: "python": without the C speedup.
BOTH_WAYS = pytest.mark.parametrize("speedup", ["c", "c-folders", "python"])


def _folder(root: Path) -> Location:
    root.mkdir(parents=True, exist_ok=True)
    loc = open_location(f"folder:{root}", LocationOptions())
    loc.open()
    loc.adopt(has_history=False)
    return loc


def _job(source: Location, path: str, expected: FileMeta | None = None) -> WriteJob:
    """The job the engine makes for a copy of ``path`` out of the folder ``source``."""
    meta = source.stat(path)
    size, mtime = (meta.size, meta.mtime_ns) if meta else (1, 5 * SECOND)
    at = partial(source.local_file, path)
    root = LocalRoot(source.local_root, _go_on)
    return WriteJob(path, partial(source.open_read, path), mtime, expected, at, size, root)


def _go_on() -> None:
    """A stop check that finds no stop."""


@pytest.fixture
def use_speedup(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """``use_speedup(mode)`` makes this test's groups take the steps of ``mode`` (BOTH_WAYS).

    Both ways give the same results, so the results cannot tell which way ran: the C entry
    points are counted, and once the test is done the fixture checks that "python" never
    called them and that a C mode did, each stage call the way ``mode`` opens sources.
    """
    stages: list[bool] = []  # the ``beneath`` of each C stage call
    lands: list[int] = []  # the number of files of each C rename call
    stage_c, land_c = fastcopy._stage_c, fastcopy._land_c
    if stage_c is not None and land_c is not None:

        def stage(
            items: list[tuple[int, str, int, str, int]], durable: bool, beneath: bool, threads: int
        ) -> list[int]:
            stages.append(beneath)
            return stage_c(items, durable, beneath, threads)

        def land_new(items: list[tuple[int, str, str]]) -> list[tuple[int, int, int, int] | int]:
            lands.append(len(items))
            return land_c(items)

        monkeypatch.setattr(fastcopy, "_stage_c", stage)
        monkeypatch.setattr(fastcopy, "_land_c", land_new)
    chosen: list[str] = []

    def choose(mode: str) -> None:
        if mode != "python" and not fastcopy.SPEEDUP:
            pytest.skip("the C speedup is not built here")
        chosen.append(mode)
        if mode == "python":
            monkeypatch.setattr(fastcopy, "_stage_c", None)
            monkeypatch.setattr(fastcopy, "_land_c", None)
        monkeypatch.setattr(fastcopy, "_beneath", mode == "c")

    yield choose
    for mode in chosen:
        if mode == "python":
            assert not stages and not lands, f"the C speedup ran: {len(stages)} stage calls"
        else:
            assert stages, f"{mode}: the C speedup copied nothing"
            assert set(stages) == {mode == "c"}, f"{mode}: stage calls beneath: {stages}"


def test_the_speedup_is_built_where_ci_runs() -> None:
    if os.environ.get("FILESYNC_PURE_PYTHON") == "1":
        pytest.skip("FILESYNC_PURE_PYTHON=1: the pure-Python copies on purpose")
    assert fastcopy.SPEEDUP, "app/locations/folder/_copy.c did not build (see pip's output)"


def _odd_source(root: Path) -> dict[str, bytes]:
    """Files of every size class and some odd names; returns what each should hold."""
    files = {
        "empty": b"",
        "d/one.bin": os.urandom(1),
        "d/sub/small.bin": os.urandom(5000),
        "d/sub/chunky.bin": os.urandom(300 * 1024),
        "big.bin": os.urandom(fastcopy.FAST_COPY_MAX + 1),  # streams in Python
        "caf\udce9 \udcff.txt": b"a name that is not UTF-8",
        "deep/a/b/c/d/e.txt": b"deep",
    }
    files.update({f"many/f{i:03d}": os.urandom(i * 41) for i in range(70)})
    for path, data in files.items():
        write_file(root / path, data)
    for n, path in enumerate(sorted(files)):
        os.utime(root / path, ns=(1_500_000_000 * SECOND + n, 1_500_000_000 * SECOND + n))
    return files


@BOTH_WAYS
def test_a_group_lands_alike_both_ways(
    tmp_path: Path, speedup: str, use_speedup: Callable[[str], None]
) -> None:
    use_speedup(speedup)
    source, target = _folder(tmp_path / "a"), _folder(tmp_path / "b")
    files = _odd_source(tmp_path / "a")
    with source.batch(), target.batch():
        outcomes = target.write_many([_job(source, p) for p in sorted(files)], parallel_reads=True)
    assert all(isinstance(o, FileMeta) for o in outcomes), outcomes
    assert tree(tmp_path / "b") == files
    listing = target.scan()
    for path, outcome in zip(sorted(files), outcomes, strict=True):
        assert listing[path] == outcome  # what the engine records is what a scan reports
        assert outcome.mtime_ns == source.stat(path).mtime_ns  # type: ignore[union-attr]
    assert not list((tmp_path / "b").rglob(f"{TEMP_PREFIX}*")), "temp files left behind"


@BOTH_WAYS
@pytest.mark.parametrize("names", [["empty"], ["a-empty", "b"], ["a", "b-empty", "c"]])
def test_empty_files_anywhere_in_a_group_land(
    tmp_path: Path, speedup: str, use_speedup: Callable[[str], None], names: list[str]
) -> None:
    """An empty file first in a group, or alone, is copied like any other (the first one
    once broke how a group is cut into the C speedup's calls)."""
    use_speedup(speedup)
    source, target = _folder(tmp_path / "a"), _folder(tmp_path / "b")
    files = {name: b"" if "empty" in name else name.encode() for name in names}
    for name, data in files.items():
        write_file(tmp_path / "a" / name, data)
    with source.batch(), target.batch():
        outcomes = target.write_many([_job(source, p) for p in names], parallel_reads=True)
    assert all(isinstance(o, FileMeta) for o in outcomes), outcomes
    assert tree(tmp_path / "b") == files


def test_without_openat2_a_group_of_many_files_keeps_few_descriptors(
    tmp_path: Path, use_speedup: Callable[[str], None]
) -> None:
    """Where the system has no openat2, each file of a C call holds its source folder's
    descriptor until the call ends: a group of 1,024 files in one folder must not need 1,024
    of them at once (a call of a whole group ran out under the usual limit)."""
    use_speedup("c-folders")
    source, target = _folder(tmp_path / "a"), _folder(tmp_path / "b")
    names = [f"d/f{i:04d}" for i in range(1024)]
    for name in names:
        write_file(tmp_path / "a" / name, name.encode())
    jobs = [_job(source, p) for p in names]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    now_open = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (now_open + 200, hard))
    try:
        with source.batch(), target.batch():
            outcomes = target.write_many(jobs, parallel_reads=True)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert all(isinstance(o, FileMeta) for o in outcomes), [
        o for o in outcomes if not isinstance(o, FileMeta)
    ][:3]
    assert len(tree(tmp_path / "b")) == 1024


def _odd_cases(a: Path, b: Path, source: Location, target: Location) -> list[WriteJob]:
    """A group whose every other job goes wrong in its own way."""
    for i in range(12):
        write_file(a / f"ok{i:02d}", f"fine {i}")
    write_file(a / "gone.txt", "deleted before the copy")
    write_file(a / "link-target.txt", "outside")
    write_file(a / "saved.txt", "engine's version")
    write_file(a / "blocked/x.txt", "a file stands where its folder should be")
    write_file(a / "user-folder", "a folder stands where this file should go")
    write_file(b / "blocked", "the user's file")
    (b / "user-folder").mkdir()
    jobs = [_job(source, f"ok{i:02d}") for i in range(12)]
    jobs.insert(2, _job(source, "gone.txt"))
    (a / "gone.txt").unlink()
    (a / "link.txt").symlink_to(a / "link-target.txt")
    jobs.insert(5, _job(source, "link.txt"))
    jobs.insert(7, _job(source, "saved.txt"))  # planned as new; the user saves one meanwhile
    jobs.insert(9, _job(source, "blocked/x.txt"))
    jobs.insert(11, _job(source, "user-folder"))
    write_file(a / "swapped/x.txt", "planned while swapped was a folder")
    jobs.insert(13, _job(source, "swapped/x.txt"))
    write_file(a.parent / "outside/x.txt", "outside the root: never to be copied")
    shutil.rmtree(a / "swapped")
    (a / "swapped").symlink_to(a.parent / "outside")  # a folder on the way is now a link
    return jobs


def _first(
    act: Callable[[], object], opener: Callable[[], contextlib.AbstractContextManager[T]]
) -> Callable[[], contextlib.AbstractContextManager[T]]:
    """``opener``, doing ``act`` just before it (while the group is written)."""

    @contextlib.contextmanager
    def opened() -> Iterator[T]:
        act()
        with opener() as value:
            yield value

    return opened


@BOTH_WAYS
def test_each_odd_case_fails_alone_with_the_same_error_both_ways(
    tmp_path: Path, speedup: str, use_speedup: Callable[[str], None]
) -> None:
    use_speedup(speedup)
    a, b = tmp_path / "a", tmp_path / "b"
    source, target = _folder(a), _folder(b)
    jobs = _odd_cases(a, b, source, target)
    saved = jobs[7]
    assert saved.source_at is not None
    save = partial(write_file, b / "saved.txt", "the user's save, made during the group")
    jobs[7] = WriteJob(
        saved.path,
        _first(save, saved.open_source),
        saved.mtime_ns,
        None,
        _first(save, saved.source_at),
        saved.size,
        LocalRoot(_first(save, source.local_root), _go_on),
    )
    with source.batch(), target.batch():
        outcomes = target.write_many(jobs, parallel_reads=True)
    failed = {job.path: type(o).__name__ for job, o in zip(jobs, outcomes, strict=True)}
    failed = {path: kind for path, kind in failed.items() if kind != "FileMeta"}
    assert failed == {
        "gone.txt": "FileVanished",
        "link.txt": "LinkedPath",
        "saved.txt": "FileChanged",
        "blocked/x.txt": "FileSyncError",
        "user-folder": "FileSyncError",
        "swapped/x.txt": "LinkedPath",
    }
    assert "swapped/x.txt" not in tree(b)
    assert (b / "saved.txt").read_text() == "the user's save, made during the group"
    assert (b / "blocked").read_text() == "the user's file"
    assert sorted(p.name for p in b.glob("ok*")) == [f"ok{i:02d}" for i in range(12)]
    assert not list(b.rglob(f"{TEMP_PREFIX}*")), "temp files left behind"


def test_the_c_limit_is_the_planned_size_limit() -> None:
    if not fastcopy.SPEEDUP:
        pytest.skip("the C speedup is not built here")
    from app.locations.folder import _copy

    assert _copy.COPY_MAX == fastcopy.FAST_COPY_MAX


@BOTH_WAYS
def test_a_source_that_grew_or_turned_into_a_fifo_after_planning_is_handled_both_ways(
    tmp_path: Path, speedup: str, use_speedup: Callable[[str], None]
) -> None:
    """A log that grew past the C limit is copied whole (by Python, which can be stopped); a
    fifo at a planned file's name fails that file alone, without blocking the group."""
    use_speedup(speedup)
    a, b = tmp_path / "a", tmp_path / "b"
    source, target = _folder(a), _folder(b)
    for i in range(8):
        write_file(a / f"ok{i}", f"fine {i}")
    write_file(a / "grows.log", "small at first")
    write_file(a / "pipe", "a file when planned")
    jobs = [
        _job(source, p)
        for p in ["ok0", "grows.log", "ok1", "pipe", *[f"ok{i}" for i in range(2, 8)]]
    ]
    grown = os.urandom(fastcopy.FAST_COPY_MAX + 4096)
    write_file(a / "grows.log", grown)
    (a / "pipe").unlink()
    os.mkfifo(a / "pipe")
    with source.batch(), target.batch():
        outcomes = target.write_many(jobs, parallel_reads=True)
    kinds = {job.path: type(o).__name__ for job, o in zip(jobs, outcomes, strict=True)}
    assert kinds.pop("pipe") == "FileSyncError"
    assert set(kinds.values()) == {"FileMeta"}, kinds
    assert (b / "grows.log").read_bytes() == grown
    assert not (b / "pipe").exists()
    assert not list(b.rglob(f"{TEMP_PREFIX}*")), "temp files left behind"


@BOTH_WAYS
def test_a_time_past_2262_is_recorded_as_a_scan_reports_it_both_ways(
    tmp_path: Path, speedup: str, use_speedup: Callable[[str], None]
) -> None:
    """Nanoseconds past 2**63 (the year 2262): what the engine records is what a scan sees."""
    use_speedup(speedup)
    source, target = _folder(tmp_path / "a"), _folder(tmp_path / "b")
    far = 10_000_000_000 * SECOND + 5
    for name in ("near", "far"):
        write_file(tmp_path / "a" / name, name)
    os.utime(tmp_path / "a" / "far", ns=(far, far))
    with source.batch(), target.batch():
        outcomes = target.write_many(
            [_job(source, p) for p in ("near", "far")], parallel_reads=True
        )
    listing = target.scan()
    assert outcomes == [listing["near"], listing["far"]]
    assert listing["far"].mtime_ns == far


def _interrupted() -> contextlib.AbstractContextManager[tuple[int, str]]:
    raise KeyboardInterrupt  # anything that is not one file's failure ends the group


def _interrupted_stream() -> contextlib.AbstractContextManager[BinaryIO]:
    raise KeyboardInterrupt


def _interrupt() -> None:
    raise KeyboardInterrupt


@BOTH_WAYS
def test_a_group_ended_by_a_stop_renames_nothing_and_leaves_no_temp_file(
    tmp_path: Path, speedup: str, use_speedup: Callable[[str], None]
) -> None:
    """The stop comes once the C speedup has written a call's temp files (in every mode that
    has it), and those go too."""
    use_speedup(speedup)
    a, b = tmp_path / "a", tmp_path / "b"
    source, target = _folder(a), _folder(b)
    count, at_stop = fastcopy.FAST_CALL_FILES + 72, fastcopy.FAST_CALL_FILES + 40
    for i in range(count):
        write_file(a / f"f{i:03d}", f"data {i}")
    jobs = [_job(source, f"f{i:03d}") for i in range(count)]
    stop = jobs[at_stop]
    stopped = LocalRoot(source.local_root, _interrupt)
    at = _interrupted
    jobs[at_stop] = WriteJob(
        stop.path, stop.open_source, stop.mtime_ns, None, at, stop.size, stopped
    )
    if speedup == "python":
        jobs[at_stop] = WriteJob(
            stop.path, _interrupted_stream, stop.mtime_ns, None, None, stop.size
        )
    with contextlib.suppress(KeyboardInterrupt), source.batch(), target.batch():
        target.write_many(jobs, parallel_reads=True)
    assert tree(b) == {}
    assert not list(b.rglob(f"{TEMP_PREFIX}*"))


@BOTH_WAYS
def test_an_initial_sync_copies_everything_alike_both_ways(
    tmp_path: Path, speedup: str, use_speedup: Callable[[str], None]
) -> None:
    """Through the engine: its jobs offer the source folder, and the rows match the files."""
    use_speedup(speedup)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    files = _odd_source(a)
    b.mkdir()
    c.mkdir()
    rig = Rig(tmp_path, [a, b, c])
    engine: Engine = rig.start()
    try:
        assert tree(b) == files and tree(c) == files
        for root in (b, c):
            listing = _folder(root).scan()
            assert {p: listing[p].mtime_ns for p in files} == {
                p: (a / p).stat().st_mtime_ns for p in files
            }
        assert engine.status() is not None
    finally:
        rig.stop()


def test_many_groups_leak_no_memory_and_no_descriptor(tmp_path: Path) -> None:
    """The C code's buffers and references are freed: RSS and open descriptors stay flat."""
    if not fastcopy.SPEEDUP:
        pytest.skip("the C speedup is not built here")
    script = textwrap.dedent(
        """
        import os, resource, sys
        from pathlib import Path
        from app.locations.folder import _copy
        work = Path(sys.argv[1])
        src = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
        for i in range(20):
            (work / f"s{i}").write_bytes(os.urandom(3000))
        def rounds(n):
            for r in range(n):
                dst = os.open(work / "t", os.O_RDONLY | os.O_DIRECTORY)
                items = [(src, f"s{i}".encode(), dst, f"t{i}".encode(), r) for i in range(20)]
                items.append((src, b"missing", dst, b"never", 0))
                # every other round shared by two threads of the C code
                assert _copy.stage(items, False, False, 1 + r % 2)[:20] == [0] * 20
                landed = _copy.land_new([(dst, f"t{i}".encode(), f"n{i}".encode())
                                         for i in range(21)])
                assert all(isinstance(x, tuple) for x in landed[:20]), landed
                for i in range(20):
                    os.unlink(f"n{i}", dir_fd=dst)
                os.close(dst)
        (work / "t").mkdir()
        rounds(300)
        fds = len(os.listdir("/proc/self/fd"))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rounds(3000)
        print(len(os.listdir("/proc/self/fd")) - fds,
              resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    fds, rss_kib = map(int, done.stdout.split())
    assert fds == 0, f"{fds} descriptors more after 3,000 groups"
    assert rss_kib < 2048, f"RSS grew {rss_kib} KiB over 3,000 groups"


def test_two_threads_of_the_c_copy_answer_for_each_file_in_order(tmp_path: Path) -> None:
    """A stage call shared by two threads still reports each file's own outcome in its place,
    and each temp file holds its own source's bytes and time."""
    if not fastcopy.SPEEDUP:
        pytest.skip("the C speedup is not built here")
    from app.locations.folder import _copy

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    data = {i: os.urandom(100 + i * 37) for i in range(300) if i % 7}
    for i, body in data.items():
        (src / f"s{i}").write_bytes(body)
    src_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    dst_fd = os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    try:
        items = [(src_fd, f"s{i}", dst_fd, f"t{i}", 1_000_000_000 * i + 7) for i in range(300)]
        errors = _copy.stage(items, False, False, 2)
    finally:
        os.close(src_fd)
        os.close(dst_fd)
    assert errors == [0 if i % 7 else errno.ENOENT for i in range(300)]
    assert sorted(os.listdir(dst)) == sorted(f"t{i}" for i in data)
    for i, body in data.items():
        assert (dst / f"t{i}").read_bytes() == body
        assert (dst / f"t{i}").stat().st_mtime_ns == 1_000_000_000 * i + 7
