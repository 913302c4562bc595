"""Benchmark: uploads to S3 through FileSync against ``rclone copy``, and the idle cost of polling.

Run: ``.venv/bin/python bench/bench_s3.py [--small 2000] [--big-mib 1024] [--idle 10000]``

One ``rclone serve s3`` server (a child process on 127.0.0.1 over a temp folder) serves every
run. Each tool uploads the same local tree into its own empty prefix, interleaved round by
round (FileSync, rclone, FileSync, …), and the median of each is shown:

* FileSync: ``python -m app run --once folder:SRC s3://bucket/prefix?endpoint=…`` — the whole
  program, state index, guarded writes and all; its peak RSS is that process's;
* rclone: ``rclone copy SRC hub:bucket/prefix`` with its defaults (4 transfers, 5 MiB chunks).

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


def run_child(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    """Run ``cmd`` with its output in ``log``; return its peak RSS in MiB (read every 20 ms)."""
    peak = 0.0
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        while proc.poll() is None:
            peak = max(peak, peak_rss_mib(proc.pid))
            time.sleep(0.02)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}); see {log}")
    return peak


def filesync(server: S3Server, src: Path, bucket: str, prefix: str, work: Path) -> float:
    state = work / f"state-{prefix}"
    cmd = [sys.executable, "-m", "app", "run", "--once", "--state", str(state),
           f"folder:{src}", server.url(bucket, prefix)]  # fmt: skip
    return run_child(cmd, work / "filesync.log")


def rclone(server: S3Server, src: Path, bucket: str, prefix: str, work: Path) -> float:
    cmd = [str(BIN / "rclone"), "copy", str(src), f"hub:{bucket}/{prefix}"]
    return run_child(cmd, work / "rclone.log", server.rclone_env())


def compare(server: S3Server, src: Path, rounds: int, work: Path, what: str) -> None:
    results: dict[str, list[tuple[float, float]]] = {"FileSync": [], "rclone copy": []}
    bucket = server.new_bucket()
    for n in range(rounds):
        results["FileSync"].append(timed(partial(filesync, server, src, bucket, f"fs{n}", work)))
        results["rclone copy"].append(timed(partial(rclone, server, src, bucket, f"rc{n}", work)))
        print(f"  round {n + 1}: FileSync {results['FileSync'][-1][0]:.2f} s, "
              f"rclone {results['rclone copy'][-1][0]:.2f} s", flush=True)  # fmt: skip
    fs = statistics.median(t for t, _ in results["FileSync"])
    rc = statistics.median(t for t, _ in results["rclone copy"])
    fs_rss = max(r for _, r in results["FileSync"])
    rc_rss = max(r for _, r in results["rclone copy"])
    print(f"{what}: FileSync {fs:.2f} s (peak RSS {fs_rss:.0f} MiB), rclone copy {rc:.2f} s "
          f"(peak RSS {rc_rss:.0f} MiB), ratio {fs / rc:.2f}x", flush=True)  # fmt: skip


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
    args = parser.parse_args()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    server = S3Server("rclone", work / "server")
    server.start()
    try:
        if args.small:
            small = work / "small"
            make_small(small, args.small)
            compare(server, small, args.rounds, work, f"{args.small} small files")
        if args.big_mib:
            big = work / "big"
            make_big(big, args.big_mib)
            compare(server, big, max(1, args.rounds - 1), work, f"one {args.big_mib} MiB file")
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
