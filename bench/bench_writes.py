"""Benchmark of the folder WRITE path (a script, not a test): issue 11's write targets.

Run: ``.venv/bin/python bench/bench_writes.py [--quick] [--profile FILE] [--dir DIR]``.

Each FileSync number has its reference measured in the same run, interleaved round by round,
so the ratio survives a noisy shared 2-core machine:

1. Initial sync of 3,000 and 10,000 files of 1-8 KiB (100 folders) into two empty folders
   (``engine.start(watch=False)``, as ``--once`` does before its convergence check); reference:
   ``rsync -a`` to both (rsync does not fsync; FileSync makes every file durable before it
   shows it under its name). Best of the rounds. Target: <= 1.25x rsync.
2. A burst of 1,000 new 1 KiB files into a new subfolder (and, for context, into an existing
   folder) of a watched folder, until every copy is in both other folders; reference: a bare
   watchdog copier that makes each copy durable on its own (temp file, fsync, rename), the
   naive way. Median of the rounds. Target: no slower than it, nothing missed.
3. Live latency of one 1 KiB file to two folders (one file at a time). Targets: median
   <= 60 ms, p95 <= 100 ms.

``--profile FILE`` runs one extra 10,000-file initial sync under cProfile and writes its
stats to FILE (read it with ``python -m pstats FILE``).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.bench_engine import (
    KIB,
    MIB,
    Burst,
    Row,
    arrival_time,
    burst,
    count_files,
    folders,
    initial_sync,
    make_tree,
    note,
    percentile,
    report,
    rsync,
    timed,
    watchdog_copier,
    watching,
)


@dataclass(frozen=True)
class Scale:
    """How much work each part does; ``--quick`` fits in about a minute."""

    trees: tuple[int, ...]
    sync_rounds: int
    burst_files: int
    burst_rounds: int
    latency_files: int


FULL = Scale((3_000, 10_000), sync_rounds=3, burst_files=1_000, burst_rounds=3, latency_files=100)
QUICK = Scale((3_000,), sync_rounds=1, burst_files=1_000, burst_rounds=1, latency_files=30)
TREE_DIRS = 100


def ratio(ours: float, ref: float) -> float:
    return ours / ref if ref > 0 else float("inf")


# ----- 1. initial sync -----------------------------------------------------------------------


def rsync_durable(src: Path, *targets: Path) -> None:
    """``rsync -a`` to each target, then ``sync -f`` (one ``syncfs``) of the targets' file
    system: the same work made as durable as FileSync makes it, the cheapest way."""
    rsync(src, *targets)
    subprocess.run(["sync", "-f", str(targets[0])], check=True)


def bench_initial(work: Path, files: int, rounds: int) -> list[Row]:
    """FileSync, ``rsync -a`` x2 and the same followed by ``sync -f`` into fresh empty
    folders, taking turns at going first."""
    base = work / f"init{files}"
    (src,) = folders(base, "a")
    nbytes = make_tree(src, files, TREE_DIRS, seed=files)
    t_ours, t_ref, t_durable = [], [], []
    for r in range(rounds):
        b, c, r1, r2, d1, d2 = folders(base / f"round{r}", "b", "c", "r1", "r2", "d1", "d2")
        state = base / f"round{r}" / "state"
        ours = lambda: t_ours.append(timed(lambda: initial_sync([src, b, c], state)))  # noqa: B023, E731
        ref = lambda: t_ref.append(timed(lambda: rsync(src, r1, r2)))  # noqa: B023, E731
        durable = lambda: t_durable.append(timed(lambda: rsync_durable(src, d1, d2)))  # noqa: B023, E731
        steps = [ours, ref, durable]
        for step in steps[r % 3 :] + steps[: r % 3]:
            os.sync()  # no step pays for the previous one's writes...
            gc.collect()  # ... nor for its garbage: the engine's cycles wait for a full pass
            step()
        for folder in (b, c, r1, r2, d1, d2):
            found = count_files(folder)
            if found != files:
                raise RuntimeError(f"{folder} holds {found} files, expected {files}")
        shutil.rmtree(base / f"round{r}")
    note(f"initial sync {files}, FileSync s", t_ours)
    note(f"initial sync {files}, rsync -a x2 s", t_ref)
    note(f"initial sync {files}, rsync -a x2 + sync -f s", t_durable)
    best, ref_best, durable_best = min(t_ours), min(t_ref), min(t_durable)
    x = ratio(best, ref_best)
    return [
        Row(
            f"initial sync {files:,} files ({nbytes / MIB:.0f} MiB) -> 2 empty folders, "
            f"best of {rounds}",
            f"{best:.2f} s ({2 * files / best:,.0f} files/s)",
            f"{ref_best:.2f} s rsync -a x2",
            f"{x:.2f}x rsync",
            "<= 1.25x rsync",
            x <= 1.25,
        ),
        Row(
            "same, against rsync made as durable (context)",
            f"{best:.2f} s",
            f"{durable_best:.2f} s rsync -a x2 + sync -f "
            f"({ratio(durable_best, ref_best):.2f}x rsync -a)",
            f"{ratio(best, durable_best):.2f}x",
            "",
            None,
        ),
    ]


# ----- 2. bursts -----------------------------------------------------------------------------


def _durable_copy(src: str, dest: Path) -> None:
    """Copy the naive durable way: a temp file beside ``dest``, fsync, rename."""
    tmp = dest.parent / f".tmp-{uuid.uuid4().hex[:8]}"
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout)
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, dest)


def durable_copier(source: Path, targets: list[Path]) -> AbstractContextManager[None]:
    """The burst reference: a recursive watchdog observer copying each closed file durably."""
    return watchdog_copier(source, targets, _durable_copy)


def burst_row(label: str, ours: list[Burst], ref: list[Burst], n: int, target: bool) -> Row:
    note(f"burst into {label}, FileSync s", [b.seconds for b in ours])
    note(f"burst into {label}, durable watchdog copier s", [b.seconds for b in ref])
    t_ours = statistics.median(b.seconds for b in ours)
    t_ref = statistics.median(b.seconds for b in ref)
    missed, ref_missed = sum(b.missed for b in ours), sum(b.missed for b in ref)
    of = f"of {2 * n * len(ours)}"
    x = ratio(t_ours, t_ref)
    return Row(
        f"burst {n:,} x 1 KiB into {label} -> 2 folders, median of {len(ours)}",
        f"{t_ours:.2f} s, {missed} {of} missed",
        f"{t_ref:.2f} s durable watchdog copier, {ref_missed} missed",
        f"{x:.2f}x copier",
        "<= 1x copier, none missed" if target else "",
        (x <= 1.0 and missed == 0) if target else None,
    )


def bench_bursts(work: Path, scale: Scale) -> list[Row]:
    """Bursts into a watched 3,000-file tree, alternating FileSync and the durable copier."""
    n = scale.burst_files
    base = work / "burst"
    src, b, c = folders(base, "a", "b", "c")
    make_tree(src, 3_000, TREE_DIRS, seed=7)
    initial_sync([src, b, c], base / "state")
    rsrc, rb, rc = folders(work / "burstref", "a", "b", "c")
    ours: dict[bool, list[Burst]] = {True: [], False: []}
    ref: dict[bool, list[Burst]] = {True: [], False: []}
    with watching([src, b, c], base / "state") as engine:
        engine.wait_idle(30)
        with durable_copier(rsrc, [rb, rc]):
            for r in range(scale.burst_rounds):
                (rsrc / f"d{r:03d}").mkdir()
                for new in (True, False):
                    sub = f"new-burst-{r}" if new else f"d{r:03d}"
                    os.sync()
                    ours[new].append(burst(src, [b, c], sub, n, new_folder=new))
                    engine.wait_idle(30)
                    os.sync()
                    ref[new].append(burst(rsrc, [rb, rc], sub, n, new_folder=new))
    return [
        burst_row("a new subfolder", ours[True], ref[True], n, target=True),
        burst_row("an existing folder", ours[False], ref[False], n, target=False),
    ]


# ----- 3. latency ----------------------------------------------------------------------------


def bench_latency(work: Path, scale: Scale) -> list[Row]:
    src, b, c = folders(work / "lat", "a", "b", "c")
    data = os.urandom(KIB)
    times: list[float] = []
    with watching([src, b, c], work / "lat" / "state") as engine:
        for i in range(scale.latency_files):
            times.append(arrival_time(src, [b, c], f"e{i:04d}.bin", data))
            engine.wait_idle(10)
    med, p95 = statistics.median(times), percentile(times, 95)
    n = scale.latency_files
    return [
        Row(
            f"latency median, 1 KiB -> 2 folders ({n} files)",
            f"{med * 1000:.1f} ms",
            "",
            "",
            "<= 60 ms",
            med <= 0.060,
        ),
        Row("latency p95", f"{p95 * 1000:.1f} ms", "", "", "<= 100 ms", p95 <= 0.100),
    ]


# ----- main ----------------------------------------------------------------------------------


def profile_initial(work: Path, out: str) -> None:
    """One 10,000-file initial sync under cProfile (all threads' time shows in the engine's
    waits; the workers' own calls are profiled where they run on the engine thread)."""
    base = work / "profile"
    src, b, c = folders(base, "a", "b", "c")
    make_tree(src, 10_000, TREE_DIRS, seed=3)
    os.sync()
    profiler = cProfile.Profile()
    profiler.enable()
    initial_sync([src, b, c], base / "state")
    profiler.disable()
    profiler.dump_stats(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller work, about a minute")
    parser.add_argument("--profile", metavar="FILE", help="also profile a 10,000-file sync")
    parser.add_argument(
        "--only", choices=("initial", "bursts", "latency"), help="run one part only"
    )
    parser.add_argument(
        "--dir",
        default="/tmp",
        help="where the trees go (default /tmp); e.g. a journaled ext4 mount: this machine's "
        "root has no journal, so ext4 scans past every inode freed in the last minute",
    )
    args = parser.parse_args()
    scale = QUICK if args.quick else FULL
    started = time.perf_counter()
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="filesync-bench-writes-", dir=args.dir))
    steps: dict[str, Callable[[], list[Row]]] = {
        "initial": lambda: [
            r for n in scale.trees for r in bench_initial(work, n, scale.sync_rounds)
        ],
        "bursts": lambda: bench_bursts(work, scale),
        "latency": lambda: bench_latency(work, scale),
    }
    try:
        for name, step in steps.items():
            if args.only in (None, name):
                rows += step()
                print(f"... {time.perf_counter() - started:.0f} s", file=sys.stderr)
        if args.profile:
            profile_initial(work, args.profile)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(rows, args.quick, started)


if __name__ == "__main__":
    sys.exit(main())
