"""Benchmark of ZIP locations (a script, not a test): ``.venv/bin/python bench/bench_zip.py``.

(a) Replace one member of a 10,000-entry, ~47 MB archive of incompressible data: FileSync's
    rewrite (raw copies, cached directory) side by side with ``zip archive.zip member`` and a
    naive zipfile recompress, all in this run. Target: ours <= 2x the zip tool.
(b) Idle cost of polling that archive: stat() calls, directory reads and CPU per poll.
    Target: one stat per interval, < 1 % CPU at the default 2 s interval.
(c) 100 files changed in a burst in a folder synced with the archive by the engine: rewrites
    and time until the archive matches. Target: <= 2 rewrites.

Options: ``--entries N`` (10000), ``--member-size BYTES`` (4700), ``--repeat N`` (5),
``--idle-seconds S`` (6), ``--skip-engine``.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.locations import LocationOptions, open_location
from app.locations.zip import archive as ziparchive
from app.locations.zip.location import ZipLocation
from app.watch.poller import PollingWatcher

MEMBER = "d05/m05000.bin"
Row = tuple[str, str, str]


def build_archive(path: Path, entries: int, size: int) -> None:
    """An archive of ``entries`` random members, like a folder of photos or binaries."""
    rng = random.Random(42)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(entries):
            zf.writestr(f"d{i // 1000:02d}/m{i:05d}.bin", rng.randbytes(size))


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def open_zip(path: Path) -> ZipLocation:
    loc = open_location(f"zip:{path}", LocationOptions())
    assert isinstance(loc, ZipLocation)
    loc.open()
    return loc


def bench_replace(work: Path, base: Path, size: int, repeat: int) -> list[Row]:
    rng = random.Random(7)
    tool_zip, ours_zip, naive_zip = (work / n for n in ("tool.zip", "ours.zip", "naive.zip"))
    for target in (tool_zip, ours_zip, naive_zip):
        shutil.copyfile(base, target)
    src = work / "src"
    (src / Path(MEMBER).parent).mkdir(parents=True)

    def with_zip_tool() -> None:
        (src / MEMBER).write_bytes(rng.randbytes(size))
        subprocess.run(["zip", "-q", str(tool_zip), MEMBER], cwd=src, check=True)

    t_tool = timed(with_zip_tool, repeat)

    start = time.perf_counter()
    loc = open_zip(ours_zip)
    t_open = time.perf_counter() - start
    try:
        before = loc.rewrites
        t_ours = timed(
            lambda: loc.write(MEMBER, io.BytesIO(rng.randbytes(size)), time.time_ns()), repeat
        )
        assert loc.rewrites - before == repeat
    finally:
        loc.close()

    def naive() -> None:
        out = work / "naive-out.zip"
        with zipfile.ZipFile(naive_zip) as old, zipfile.ZipFile(out, "w") as new:
            for info in old.infolist():
                data = rng.randbytes(size) if info.filename == MEMBER else old.read(info)
                new.writestr(info, data, zipfile.ZIP_DEFLATED)
        os.replace(out, naive_zip)

    t_naive = timed(naive, 1)
    with zipfile.ZipFile(ours_zip) as zf:
        assert zf.testzip() is None
    ratio = f"{t_ours / t_tool:.2f}x zip"
    return [
        ("(a) zip tool: zip archive.zip member", f"{t_tool:.3f} s", "reference"),
        ("(a) FileSync: one-write batch (dir cached)", f"{t_ours:.3f} s", ratio),
        ("(a) FileSync: open + parse directory once", f"{t_open:.3f} s", "not per batch"),
        ("(a) naive zipfile recompress", f"{t_naive:.3f} s", f"{t_naive / t_tool:.1f}x zip"),
    ]


def bench_idle(base: Path, seconds: float) -> list[Row]:
    loc = open_zip(base)
    counts = {"stat": 0, "parse": 0, "pread": 0}
    real_stat, real_parse, real_pread = os.stat, ziparchive.parse_directory, os.pread

    def counting_stat(*a: object, **k: object) -> os.stat_result:
        counts["stat"] += 1
        return real_stat(*a, **k)  # type: ignore[arg-type]

    def counting_parse(*a: object) -> object:
        counts["parse"] += 1
        return real_parse(*a)  # type: ignore[arg-type]

    def counting_pread(*a: object) -> bytes:
        counts["pread"] += 1
        return real_pread(*a)  # type: ignore[arg-type]

    polls = [0]
    real_scan = loc.scan

    def counting_scan(prefix: str = "") -> object:
        polls[0] += 1
        return real_scan(prefix)

    rows: list[Row] = []
    try:
        loc.scan = counting_scan  # type: ignore[method-assign]
        os.stat, os.pread = counting_stat, counting_pread  # type: ignore[assignment]
        ziparchive.parse_directory = counting_parse  # type: ignore[assignment]
        for interval, window in ((0.05, seconds / 2), (2.0, seconds * 2)):
            for key in counts:
                counts[key] = 0
            polls[0] = 0
            watcher = PollingWatcher(loc, lambda change: None, interval)
            watcher.start()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            threading.Event().wait(window)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            watcher.stop()
            n = max(polls[0], 1)
            rows.append(
                (
                    f"(b) idle poll every {interval:g} s ({n} polls)",
                    f"{counts['stat'] / n:.2f} stat, {counts['parse']} parse, "
                    f"{counts['pread']} read",
                    f"{cpu / n * 1e6:.0f} us CPU/poll, {100 * cpu / wall:.3f} % CPU",
                )
            )
    finally:
        os.stat, os.pread = real_stat, real_pread
        ziparchive.parse_directory = real_parse
        loc.close()
    return rows


_POLL_CHILD = """
import sys, threading
sys.path.insert(0, sys.argv[3])
from app.locations import open_location
from app.watch.poller import PollingWatcher
loc = open_location("zip:" + sys.argv[1]); loc.open()
polls = [0]
scan = loc.scan
def counted(prefix=""):
    polls[0] += 1
    return scan(prefix)
loc.scan = counted
w = PollingWatcher(loc, lambda c: None, 0.02); w.start()
threading.Event().wait(float(sys.argv[2]))
w.stop(); loc.close()
print(polls[0])
"""


def _strace_counts(base: Path, seconds: float, work: Path) -> tuple[dict[str, int], int]:
    out = work / f"strace-{seconds}.txt"
    repo = str(Path(__file__).resolve().parents[1])
    run = subprocess.run(
        ["strace", "-f", "-c", "-o", str(out), sys.executable, "-c", _POLL_CHILD,
         str(base), str(seconds), repo],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    counts: dict[str, int] = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            counts[parts[-1]] = int(parts[3])
    return counts, int(run.stdout.strip())


def bench_idle_syscalls(base: Path, work: Path) -> list[Row]:
    """Real syscalls per poll: a polling run minus an identical run with one poll, by strace."""
    if shutil.which("strace") is None:
        return [("(b) syscalls per poll (strace)", "skipped", "strace not installed")]
    try:
        short, polls_short = _strace_counts(base, 0.0, work)
        long, polls_long = _strace_counts(base, 2.0, work)
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        return [("(b) syscalls per poll (strace)", "skipped", str(exc)[:60])]
    polls = max(polls_long - polls_short, 1)
    per_poll = {
        name: (long.get(name, 0) - short.get(name, 0)) / polls
        for name in set(long) | set(short)
        if abs(long.get(name, 0) - short.get(name, 0)) / polls >= 0.05
    }
    text = ", ".join(f"{v:.2f} {k}" for k, v in sorted(per_poll.items(), key=lambda kv: -kv[1]))
    return [(f"(b) syscalls per poll, strace ({polls} polls)", text or "none", "futex = sleep")]


def bench_engine(work: Path) -> list[Row]:
    try:
        from app.engine.engine import Engine
        from app.engine.index import StateIndex
        from app.engine.settings import EngineSettings
    except ImportError as exc:
        return [("(c) engine burst", "skipped", f"engine not importable: {exc}")]
    folder = work / "folder"
    folder.mkdir()
    for i in range(100):
        (folder / f"f{i:03d}.txt").write_text(f"initial {i}\n" * 50)
    zloc = open_location(f"zip:{work / 'engine.zip'}", LocationOptions())
    floc = open_location(f"folder:{folder}", LocationOptions())
    assert isinstance(zloc, ZipLocation)
    engine = Engine(
        [floc, zloc], StateIndex(work / "state.sqlite"), EngineSettings(poll_interval=2.0)
    )

    def archive_matches() -> bool:
        try:
            with zipfile.ZipFile(work / "engine.zip") as zf:
                inside = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
        except (OSError, zipfile.BadZipFile):
            return False
        return inside == {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    def wait(condition: Callable[[], bool], timeout: float = 120) -> float:
        start = time.perf_counter()
        while not condition():
            if time.perf_counter() - start > timeout:
                raise TimeoutError("the archive never matched the folder")
            threading.Event().wait(0.02)
        return time.perf_counter() - start

    start = time.perf_counter()
    engine.start()
    try:
        wait(archive_matches)
        t_initial = time.perf_counter() - start
        initial_rewrites = zloc.rewrites
        start_rewrites = zloc.rewrites
        for i in range(100):
            (folder / f"f{i:03d}.txt").write_text(f"changed in a burst {i}\n" * 60)
        t_burst = wait(archive_matches)
        wait(lambda: engine.wait_idle(0.5))
        burst_rewrites = zloc.rewrites - start_rewrites
    finally:
        engine.stop()
    return [
        ("(c) initial sync of 100 files", f"{t_initial:.2f} s", f"{initial_rewrites} rewrites"),
        ("(c) 100 files changed in a burst", f"{t_burst:.2f} s", f"{burst_rewrites} rewrites"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--member-size", type=int, default=4_700)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=6.0)
    parser.add_argument("--skip-engine", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-zip-") as tmp:
        work = Path(tmp)
        base = work / "base.zip"
        build_archive(base, args.entries, args.member_size)
        size_mb = base.stat().st_size / 1e6
        print(f"archive: {args.entries} entries, {size_mb:.1f} MB, zip tool {zip_version()}")
        rows = bench_replace(work, base, args.member_size, args.repeat)
        rows += bench_idle(base, args.idle_seconds)
        rows += bench_idle_syscalls(base, work)
        if not args.skip_engine:
            rows += bench_engine(work)
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    line = "+".join("-" * (w + 2) for w in widths)
    print(line)
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(line)


def zip_version() -> str:
    out = subprocess.run(["zip", "-v"], capture_output=True, text=True, check=False).stdout
    return next((ln.split(",")[0].strip() for ln in out.splitlines() if "This is Zip" in ln), "?")


if __name__ == "__main__":
    main()
