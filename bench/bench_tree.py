"""Benchmark of large trees on the read side: restarts, first runs, watching (a script, not a test).

Run: ``.venv/bin/python bench/bench_tree.py [--quick] [--sizes 10000,30000,...]``
(full, 10k-300k files: about 6 min and 2.5 GB of /tmp; ``--quick``: 10k and 30k, about 1 min).

Every tree holds N small files (16-512 bytes) in N/100 folders, copied to a second folder with
``rsync -a`` so the two are identical, mtimes included. Each FileSync figure has ``rsync -a A/
B/`` over the same pair beside it, measured in the same run and interleaved round by round, so
the ratio survives a noisy 2-core machine even when the absolute times do not:

1. Restart with nothing changed: ``python -m app run folder:A folder:B --once`` in a child
   process with an existing index, against the ``rsync -a`` no-op; best of the rounds, with the
   child's peak RSS (``VmHWM``). The cost a file, so that growth with the tree shows.
2. First run over the two identical trees without an index, in a child process: time and peak
   RSS, and a check that no file was copied (every file keeps its inode and mtime).
3. An estimate for 1,000,000 files from a least-squares line through the restart rows.
4. Watching the largest tree pair of at most 100,000 files, in this process with the real
   engine: the time to set up one folder's watches; idle CPU over a window (a bare watchdog
   observer on the same folders, in a child, is the reference); a full rescan, the one the
   engine runs every ``rescan_interval``, against the ``rsync -a`` no-op, interleaved.
"""

from __future__ import annotations

import argparse
import compileall
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import ROOT, EngineRun, Row, idle_cpu, note, ratio, report

from app.engine.gcpolicy import collect_less_often
from app.locations import LocationOptions, open_location
from app.locations.base import META_DIR
from app.locations.folder.location import FolderLocation
from app.watch.choose import watcher_for

MIB = 1024 * 1024
FILES_PER_FOLDER = 100
FULL_SIZES = (10_000, 30_000, 100_000, 300_000)
QUICK_SIZES = (10_000, 30_000)
#: The watching part uses the largest tree of at most this many files.
WATCH_MAX = 100_000


def make_tree(root: Path, files: int, seed: int) -> None:
    """``files`` files of 16-512 bytes in ``files / 100`` folders ``dNNNN``."""
    rng = random.Random(seed)
    data = rng.randbytes(512)
    dirs = max(1, files // FILES_PER_FOLDER)
    for d in range(dirs):
        (root / f"d{d:04d}").mkdir(parents=True, exist_ok=True)
    for i in range(files):
        with open(root / f"d{i % dirs:04d}" / f"f{i:07d}.bin", "wb") as f:
            f.write(data[: rng.randint(16, 512)])


def identities(root: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every file outside the meta folder: a copy would change one of them."""
    found = {}
    for folder, dirnames, filenames in os.walk(root):
        if folder == str(root) and META_DIR in dirnames:
            dirnames.remove(META_DIR)
        for name in filenames:
            st = os.lstat(os.path.join(folder, name))
            found[os.path.join(folder, name)] = (st.st_ino, st.st_mtime_ns)
    return found


def peak_rss_kib(pid: int) -> int:
    """The process's peak RSS so far (``VmHWM``); 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_child(argv: list[str], log: Path) -> tuple[float, int]:
    """Run ``argv`` to completion with its output in ``log``; (wall s, peak RSS in KiB).

    The peak is the child's ``VmHWM``, read every 10 ms by a thread while this one waits for
    the exit: ``ru_maxrss`` from ``wait4`` keeps the forking parent's peak across ``exec``,
    which would hide a small child's own.
    """
    os.sync()
    peaks = [0]
    with open(log, "ab") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.01):
                peaks.append(peak_rss_kib(proc.pid))

        watcher = threading.Thread(target=watch)
        watcher.start()
        _, status, _ = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        done.set()
        watcher.join()
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        raise RuntimeError(f"{argv[:4]} exited {code}; see {log}")
    return elapsed, max(peaks)


def rsync_noop(a: Path, b: Path, log: Path) -> float:
    seconds, _ = run_child(["rsync", "-a", f"{a}/", f"{b}/"], log)
    return seconds


def filesync_once(a: Path, b: Path, state: Path, log: Path) -> tuple[float, int]:
    argv = [sys.executable, "-m", "app", "run", f"folder:{a}", f"folder:{b}", "--once"]
    return run_child([*argv, "--state", str(state)], log)


class Sizes:
    """Measured figures of one tree size, kept for the estimate."""

    def __init__(self) -> None:
        self.restart: dict[int, float] = {}
        self.rsync: dict[int, float] = {}


def bench_size(work: Path, n: int, rounds: int, sizes: Sizes) -> tuple[list[Row], Path, Path]:
    """First run and restarts over one pair of ``n``-file trees; returns its rows and the pair."""
    base = work / f"t{n}"
    a, b, state, log = base / "a", base / "b", base / "state", base / "log.txt"
    make_tree(a, n, seed=n)
    subprocess.run(["rsync", "-a", f"{a}/", f"{b}/"], check=True)
    before = identities(a) | identities(b)
    ref_first = rsync_noop(a, b, log)
    first, first_rss = filesync_once(a, b, state, log)
    after = identities(a) | identities(b)
    copied = sum(1 for path, ident in after.items() if before.get(path) != ident)
    t_ours, t_ref, rss = [], [], []
    for _ in range(rounds):
        seconds, peak = filesync_once(a, b, state, log)
        t_ours.append(seconds)
        rss.append(peak)
        t_ref.append(rsync_noop(a, b, log))
    note(f"{n} restart FileSync s", t_ours)
    note(f"{n} restart rsync no-op s", t_ref)
    best, ref = min(t_ours), min(t_ref)
    sizes.restart[n], sizes.rsync[n] = best, ref
    peak_mib = max(rss) / 1024
    first_mib = first_rss / 1024
    folders = max(1, n // FILES_PER_FOLDER)
    rows = [
        Row(
            f"1. restart, nothing changed, {n:,} files ({folders:,} folders) x 2, best of {rounds}",
            f"{best:.2f} s ({best / n * 1e6:.1f} µs/file), {peak_mib:.0f} MiB",
            f"{ref:.2f} s ({ref / n * 1e6:.1f} µs/file) rsync -a no-op",
            ratio(best, ref, "rsync"),
            "<= 2x rsync",
            best <= 2 * ref,
        ),
        Row(
            f"2. first run without index, {n:,} identical files x 2",
            f"{first:.2f} s, {first_mib:.0f} MiB ({first_rss * 1024 / n:.0f} B/file), "
            f"{copied} copied",
            f"{ref_first:.2f} s rsync -a no-op",
            ratio(first, ref_first, "rsync"),
            "no copies, <= 100 MiB" if n <= 100_000 else "no copies",
            copied == 0 and (n > 100_000 or first_mib <= 100),
        ),
    ]
    return rows, a, b


def estimate(sizes: Sizes) -> Row:
    """A least-squares line through the restart rows, read at 1,000,000 files."""

    def at_million(points: dict[int, float]) -> float:
        xs, ys = list(points), list(points.values())
        if len(xs) < 2:
            return ys[0] / xs[0] * 1_000_000
        slope, intercept = statistics.linear_regression(xs, ys)
        return intercept + slope * 1_000_000

    ours, ref = at_million(sizes.restart), at_million(sizes.rsync)
    return Row(
        "3. restart, 1,000,000 files x 2 (estimated from the rows above)",
        f"{ours:.1f} s",
        f"{ref:.1f} s rsync -a no-op",
        ratio(ours, ref, "rsync"),
        "",
        None,
    )


def watch_setup(root: Path) -> float:
    """Seconds to start one folder's watcher (its recursive inotify watches), best of 3."""
    times = []
    for _ in range(3):
        location = open_location(f"folder:{root}", LocationOptions())
        assert isinstance(location, FolderLocation)
        watcher = watcher_for(location, lambda change: None, 2.0)
        start = time.perf_counter()
        watcher.start()
        times.append(time.perf_counter() - start)
        watcher.stop()
    note("watch set-up s", times)
    return min(times)


def bench_watching(work: Path, a: Path, b: Path, idle_seconds: float, rounds: int) -> list[Row]:
    """Watch set-up, idle CPU and full rescans of the engine watching ``a`` and ``b``."""
    n = sum(1 for _ in a.rglob("*.bin"))
    setup = watch_setup(a)
    collect_less_often()  # as build_engine does for `filesync run` and the desktop app
    run = EngineRun([a, b], work / "watch-state")
    log = work / "watch-log.txt"
    try:
        run.engine.start(watch=True)
        run.engine.wait_idle(60)
        cpu, ref_cpu = idle_cpu([a, b], idle_seconds)
        t_ours, t_ref = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            run.engine.sync_now()
            if not run.engine.wait_idle(120):
                raise RuntimeError("the rescan did not end in 120 s")
            t_ours.append(time.perf_counter() - start)
            t_ref.append(rsync_noop(a, b, log))
    finally:
        run.close()
    note("rescan FileSync s", t_ours)
    note("rescan rsync no-op s", t_ref)
    best, ref = min(t_ours), min(t_ref)
    return [
        Row(
            f"4. watch set-up, one folder of {n:,} files ({n // FILES_PER_FOLDER:,} folders)",
            f"{setup:.2f} s",
            "",
            "",
            "<= 1 s",
            setup <= 1.0,
        ),
        Row(
            f"4. idle CPU watching 2 x {n:,} files, {idle_seconds:.0f} s",
            f"{cpu * 100:.3f} % of a core",
            f"{ref_cpu * 100:.3f} % bare watchdog observer",
            f"{(cpu - ref_cpu) * 100:+.3f} pt",
            "< 0.1 %",
            cpu < 0.001,
        ),
        Row(
            f"4. full rescan while watching, 2 x {n:,} files, best of {rounds}",
            f"{best:.2f} s",
            f"{ref:.2f} s rsync -a no-op",
            ratio(best, ref, "rsync"),
            "<= 2x rsync",
            best <= 2 * ref,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 30k files, about a minute")
    parser.add_argument("--sizes", help="comma-separated file counts (default 10k,30k,100k,300k)")
    parser.add_argument("--rounds", type=int, default=0, help="restart rounds per size")
    args = parser.parse_args()
    sizes_wanted = QUICK_SIZES if args.quick else FULL_SIZES
    if args.sizes:
        sizes_wanted = tuple(int(s.replace("_", "")) for s in args.sizes.split(","))
    rounds = args.rounds or (3 if args.quick else 5)
    # An installed FileSync starts from compiled bytecode (pip compiles a wheel's modules, a
    # checkout writes them on its first run). Where PYTHONDONTWRITEBYTECODE is set, as on the
    # CI machines, every child would compile every module again: compile them once here.
    compileall.compile_dir(ROOT / "app", quiet=1)
    idle_seconds = 10.0 if args.quick else 45.0
    started = time.perf_counter()
    rows: list[Row] = []
    sizes = Sizes()
    work = Path(tempfile.mkdtemp(prefix="filesync-bench-tree-", dir="/tmp"))
    try:
        watch_pair: tuple[Path, Path] | None = None
        for n in sorted(sizes_wanted):
            size_rows, a, b = bench_size(work, n, rounds, sizes)
            rows += size_rows
            print(f"... {n:,} files done, {time.perf_counter() - started:.0f} s", file=sys.stderr)
            if n <= WATCH_MAX:
                watch_pair = (a, b)
            else:
                shutil.rmtree(a.parent)
        rows.append(estimate(sizes))
        if watch_pair is not None:
            rows += bench_watching(work, *watch_pair, idle_seconds, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(rows, args.quick, started, by_name=True)


if __name__ == "__main__":
    sys.exit(main())
