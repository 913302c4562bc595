"""Benchmark: uploads to S3 through FileSync against ``rclone copy``, and the idle cost of polling.

Run: ``.venv/bin/python bench/bench_s3.py [--small 2000] [--big-mib 1024] [--idle 10000]``

One ``rclone serve s3`` server (a child process on 127.0.0.1 over a temp folder) serves every
run. Each tool uploads the same local tree into its own empty prefix, interleaved round by
round (FileSync, rclone, FileSync, …), and the median of each is shown:

* FileSync: ``python -m app run --once folder:SRC s3://bucket/prefix?endpoint=…`` — the whole
  program, state index, guarded writes and all; its peak RSS is that process's;
* rclone: ``rclone copy SRC hub:bucket/prefix`` with its defaults (4 transfers, 5 MiB chunks);
* with ``--other TREE``, FileSync from another checkout (an old commit, in a second worktree) as
  a third contender in the same rounds, so a change is measured against what it replaces under
  the same load.

FileSync's modules are compiled to bytecode first (``compileall``, into ``__pycache__``), as an
installed FileSync is; with ``PYTHONDONTWRITEBYTECODE`` set, every run would otherwise compile
its own modules again (about 0.1 s a run).

Idle cost: ``scan()`` of a prefix holding ``--idle`` objects, as the poller runs it every
interval, after the first (cold) scan that learns each object's time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.locations import LocationOptions, open_location  # noqa: E402
from tests.s3_server import S3Server  # noqa: E402

BIN = Path(sys.executable).parent


def make_small(root: Path, count: int) -> None:
    """``count`` files of 1-8 KiB, 100 per folder."""
    for i in range(count):
        path = root / f"d{i // 100:03d}" / f"f{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(1024 + (i * 7919) % 7168))


def make_big(root: Path, mib: int) -> None:
    """One file of ``mib`` MiB, written in 8 MiB chunks."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "big.bin").open("wb") as out:
        for _ in range(mib // 8):
            out.write(os.urandom(8 << 20))
        out.write(os.urandom((mib % 8) << 20))


def timed(action: Callable[[], float]) -> tuple[float, float]:
    """Run ``action`` (which returns the child's peak RSS in MiB); return (seconds, RSS)."""
    started = time.perf_counter()
    rss = action()
    return time.perf_counter() - started, rss


def peak_rss_mib(pid: int) -> float:
    """The process's peak RSS so far (VmHWM; ``ru_maxrss`` would keep our own across exec)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_child(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> float:
    """Run ``cmd`` with its output in ``log``; return its peak RSS in MiB (read every 20 ms)."""
    peak = 0.0
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        while proc.poll() is None:
            peak = max(peak, peak_rss_mib(proc.pid))
            time.sleep(0.02)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}); see {log}")
    return peak


def filesync(
    server: S3Server, src: Path, bucket: str, prefix: str, work: Path, tree: Path = ROOT
) -> float:
    """``filesync run --once`` of the checkout in ``tree`` (its ``app`` comes first on the path)."""
    state = work / f"state-{prefix}"
    cmd = [sys.executable, "-m", "app", "run", "--once", "--state", str(state),
           f"folder:{src}", server.url(bucket, prefix)]  # fmt: skip
    return run_child(cmd, work / "filesync.log", cwd=tree)


def compile_tree(tree: Path) -> None:
    """Compile ``tree``'s modules to bytecode, as an installed FileSync has them."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "app")], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def rclone(server: S3Server, src: Path, bucket: str, prefix: str, work: Path) -> float:
    cmd = [str(BIN / "rclone"), "copy", str(src), f"hub:{bucket}/{prefix}"]
    return run_child(cmd, work / "rclone.log", server.rclone_env())


def compare(
    server: S3Server, src: Path, rounds: int, work: Path, what: str, other: Path | None = None
) -> None:
    """Upload ``src`` with each contender, round by round; print each one's median and range."""
    bucket = server.new_bucket()
    runs: dict[str, Callable[[str], float]] = {
        "FileSync": lambda prefix: filesync(server, src, bucket, prefix, work),
        "rclone copy": lambda prefix: rclone(server, src, bucket, prefix, work),
    }
    if other is not None:
        runs[f"FileSync at {other}"] = lambda prefix: filesync(
            server, src, bucket, prefix, work, other
        )
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for n in range(rounds):
        for i, (name, run) in enumerate(runs.items()):
            results[name].append(timed(partial(run, f"c{i}r{n}")))
        shown = ", ".join(f"{name} {times[-1][0]:.2f} s" for name, times in results.items())
        print(f"  round {n + 1}: {shown}", flush=True)
    rc = [t for t, _ in results["rclone copy"]]
    for name, times in results.items():
        median = statistics.median(t for t, _ in times)
        low, high = min(t for t, _ in times), max(t for t, _ in times)
        rss = max(r for _, r in times)
        # Each round's ratio: the load on a shared machine swings more between rounds than
        # within one, so the median of the ratios is steadier than the ratio of the medians.
        ratios = sorted(t / r for (t, _), r in zip(times, rc, strict=True))
        print(f"{what}: {name} {median:.2f} s ({low:.2f}-{high:.2f}, peak RSS {rss:.0f} MiB), "
              f"{statistics.median(ratios):.2f}x rclone copy (rounds {ratios[0]:.2f}-"
              f"{ratios[-1]:.2f}x)", flush=True)  # fmt: skip


def idle_cost(server: S3Server, count: int, polls: int) -> None:
    bucket = server.new_bucket()
    client = server.client()

    def put(i: int) -> None:
        client.put_object(Bucket=bucket, Key=f"idle/d{i // 100:03d}/f{i:05d}.txt", Body=b"x",
                          Metadata={"mtime": f"{1_700_000_000 + i}.5"})  # fmt: skip

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))
    loc = open_location(server.url(bucket, "idle"), LocationOptions(connect_timeout=30))
    loc.open()
    loc.adopt(has_history=False)
    before, started = loc.request_count, time.perf_counter()  # type: ignore[attr-defined]
    assert len(loc.scan()) == count
    cold_s, cold = time.perf_counter() - started, loc.request_count - before  # type: ignore[attr-defined]
    cpu0, before, started = time.process_time(), loc.request_count, time.perf_counter()  # type: ignore[attr-defined]
    for _ in range(polls):
        assert len(loc.scan()) == count
    warm = (loc.request_count - before) / polls  # type: ignore[attr-defined]
    wall = (time.perf_counter() - started) / polls
    cpu = (time.process_time() - cpu0) / polls
    print(f"idle, {count} objects: first scan {cold} requests in {cold_s:.2f} s; then "
          f"{warm:.0f} requests, {wall:.2f} s and {cpu:.2f} s client CPU per poll")  # fmt: skip
    loc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000, help="number of 1-8 KiB files")
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the big file, MiB")
    parser.add_argument("--idle", type=int, default=10_000, help="objects in the watched prefix")
    parser.add_argument("--polls", type=int, default=5, help="idle scans to average")
    parser.add_argument("--rounds", type=int, default=3, help="runs per tool (median shown)")
    parser.add_argument("--other", type=Path, help="also run FileSync from this checkout")
    args = parser.parse_args()
    for tree in (ROOT, args.other) if args.other else (ROOT,):
        compile_tree(tree)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    server = S3Server("rclone", work / "server")
    server.start()
    try:
        if args.small:
            small = work / "small"
            make_small(small, args.small)
            compare(server, small, args.rounds, work, f"{args.small} small files", args.other)
        if args.big_mib:
            big = work / "big"
            make_big(big, args.big_mib)
            rounds = max(1, args.rounds - 1)
            compare(server, big, rounds, work, f"one {args.big_mib} MiB file", args.other)
            shutil.rmtree(big)
        if args.idle:
            idle_cost(server, args.idle, args.polls)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"(this process: peak RSS {peak} MiB)")
    except BaseException:
        server.stop()
        raise
    server.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
