"""Benchmark: FTP uploads through FtpLocation.write() against lftp, and the idle cost of polling.

Run: ``.venv/bin/python bench/bench_ftp.py [--small 10000] [--big 200] [--polls 5]``

The pyftpdlib server runs in a separate process (``--serve``), so the client CPU we report is
ours alone. Each tool uploads the same local tree into its own empty folder on the server:

* FileSync: ``FtpLocation.write()`` per file (temp name, RNFR/RNTO, MFMT), one connection;
* bare ftplib: ``STOR`` per file, no temp name, no time stamp (the floor for one connection);
* lftp: ``mirror -R`` with its defaults (one connection).

Idle cost: ``scan()`` of the uploaded 10,000-file tree, as the poller runs it every interval,
on a server with MLSD and on one with LIST + MDTM only (after the first, cold scan).
"""

from __future__ import annotations

import argparse
import ftplib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.locations import LocationOptions, open_location
from app.locations.ftp.location import FtpLocation

USER = "bench"
PASSWORD = "bench-pass"
LFTP = "/usr/bin/lftp"


def serve(root: str, flavour: str) -> None:
    """Child process: serve ``root`` on 127.0.0.1 (port printed on stdout) until killed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer
    import logging

    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    logging.getLogger("pyftpdlib").addHandler(logging.NullHandler())
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, root, perm="elradfmwMT")
    attrs: dict[str, object] = {"authorizer": authorizer}
    if flavour == "list":
        attrs["proto_cmds"] = {
            k: v for k, v in FTPHandler.proto_cmds.items() if k not in ("MLSD", "MLST", "MFMT")
        }
    handler = type("BenchHandler", (FTPHandler,), attrs)
    server = FTPServer(("127.0.0.1", 0), handler)
    print(server.address[1], flush=True)
    server.serve_forever(handle_exit=True)


class Server:
    """A pyftpdlib server in a child process."""

    def __init__(self, root: Path, flavour: str) -> None:
        self.root = root
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(root), flavour],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def cpu(self) -> float:
        """User+system CPU seconds the server process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def url(self, path: str) -> str:
        return f"ftp://{USER}:{PASSWORD}@127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def make_tree(root: Path, count: int, size: Callable[[int], int], per_dir: int = 100) -> None:
    rng = random.Random(42)
    for i in range(count):
        path = root / f"d{i // per_dir:03}" / f"f{i:05}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size(i)))
        os.utime(path, (1_600_000_000 + i, 1_600_000_000 + i))


def files_of(root: Path) -> list[tuple[str, Path]]:
    out = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            full = Path(dirpath, name)
            out.append((full.relative_to(root).as_posix(), full))
    return sorted(out)


def client_cpu() -> float:
    """CPU seconds of this process plus its finished children (lftp; not the server)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def measure(server: Server, action: Callable[[], object]) -> tuple[float, float, float]:
    """Wall seconds, client CPU seconds, server CPU seconds of ``action``."""
    cpu0, srv0, t0 = client_cpu(), server.cpu(), time.perf_counter()
    action()
    return time.perf_counter() - t0, client_cpu() - cpu0, server.cpu() - srv0


def upload_filesync(server: Server, local: Path, remote: str) -> None:
    (server.root / remote).mkdir()
    loc = open_location(server.url(f"/{remote}"), LocationOptions())
    loc.open()
    try:
        with loc.batch():
            for rel, full in files_of(local):
                with full.open("rb") as src:
                    loc.write(rel, src, full.stat().st_mtime_ns)
    finally:
        loc.close()


def upload_ftplib(server: Server, local: Path, remote: str) -> None:
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", server.port)
    ftp.login(USER, PASSWORD)
    ftp.mkd(remote)
    made: set[str] = set()
    for rel, full in files_of(local):
        folder = os.path.dirname(rel)
        if folder and folder not in made:
            ftp.mkd(f"/{remote}/{folder}")
            made.add(folder)
        with full.open("rb") as src:
            ftp.storbinary(f"STOR /{remote}/{rel}", src)
    ftp.quit()


def upload_lftp(server: Server, local: Path, remote: str) -> None:
    script = f"set ftp:ssl-allow no; mirror -R {local} /{remote}; quit"
    subprocess.run(
        [LFTP, "-u", f"{USER},{PASSWORD}", "-p", str(server.port), "-e", script, "127.0.0.1"],
        check=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(server.root.parent)},  # no user rc files
    )


def idle_cost(server: Server, remote: str, polls: int) -> dict[str, float]:
    loc = open_location(server.url(f"/{remote}"), LocationOptions())
    loc.open()
    assert isinstance(loc, FtpLocation)
    try:
        r0 = loc.request_count
        first_wall, _, _ = measure(server, loc.scan)
        first_requests = loc.request_count - r0
        walls, cpus, srvs, reqs = [], [], [], []
        for _ in range(polls):
            r0 = loc.request_count
            wall, cpu, srv = measure(server, loc.scan)
            walls.append(wall)
            cpus.append(cpu)
            srvs.append(srv)
            reqs.append(loc.request_count - r0)
        files = len(loc.scan())
    finally:
        loc.close()
    return {
        "files": files,
        "first_wall": first_wall,
        "first_requests": first_requests,
        "wall": sum(walls) / polls,
        "cpu": sum(cpus) / polls,
        "server_cpu": sum(srvs) / polls,
        "requests": sum(reqs) / polls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000, help="number of 1-8 KiB files")
    parser.add_argument("--big", type=int, default=200, help="number of 1 MiB files")
    parser.add_argument("--polls", type=int, default=5, help="idle scans to average")
    parser.add_argument("--rounds", type=int, default=3, help="runs per tool (median shown)")
    parser.add_argument("--no-lftp", action="store_true", help="skip the lftp runs")
    parser.add_argument("--serve", nargs=2, metavar=("ROOT", "FLAVOUR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-ftp-"))
    try:
        small, big = work / "small", work / "big"
        make_tree(small, args.small, lambda i: 1024 + (i * 7919) % (7 * 1024 + 1))
        make_tree(big, args.big, lambda i: 1024 * 1024, per_dir=50)
        rows: list[tuple[str, str, float, float, float]] = []
        server_root = work / "server"
        server_root.mkdir()
        server = Server(server_root, "full")
        try:
            for label, tree in ((f"{args.small} x 1-8 KiB", small), (f"{args.big} x 1 MiB", big)):
                tag = tree.name
                tools: list[tuple[str, Callable[[str], None]]] = [
                    ("FileSync write()", lambda r, t=tree: upload_filesync(server, t, r)),
                    ("bare ftplib STOR", lambda r, t=tree: upload_ftplib(server, t, r)),
                ]
                if not args.no_lftp and Path(LFTP).exists():
                    tools.append(("lftp mirror -R", lambda r, t=tree: upload_lftp(server, t, r)))
                samples: dict[str, list[tuple[float, float, float]]] = {n: [] for n, _ in tools}
                for round_no in range(args.rounds):  # interleaved: load changes hit all alike
                    for name, run in tools:
                        remote = f"{name.split()[0].lower()}-{tag}-{round_no}"
                        samples[name].append(measure(server, lambda f=run, r=remote: f(r)))
                for name, _ in tools:
                    wall, cpu, srv = sorted(samples[name])[len(samples[name]) // 2]
                    rows.append((label, name, wall, cpu, srv))
            mlsd = idle_cost(server, "filesync-small-0", args.polls)
        finally:
            server.stop()
        list_root = work / "list-server"
        shutil.copytree(server_root / "filesync-small-0", list_root / "tree")
        list_server = Server(list_root, "list")
        try:
            listed = idle_cost(list_server, "tree", args.polls)
        finally:
            list_server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nUploads to a loopback pyftpdlib server in its own process (median of {args.rounds})\n"
    )
    print(f"| {'tree':<18} | {'tool':<18} | {'wall s':>7} | {'client CPU s':>12} |"
          f" {'server CPU s':>12} |")  # fmt: skip
    print(f"|{'-' * 20}|{'-' * 20}|{'-' * 9}|{'-' * 14}|{'-' * 14}|")
    for label, name, wall, cpu, srv in rows:
        print(f"| {label:<18} | {name:<18} | {wall:7.2f} | {cpu:12.2f} | {srv:12.2f} |")
    print(f"\nIdle polling of a {mlsd['files']:.0f}-file tree (average of {args.polls} scans)\n")
    print(f"| {'server':<16} | {'1st scan s':>10} | {'1st reqs':>8} | {'scan s':>7} |"
          f" {'requests':>8} | {'client CPU s':>12} | {'server CPU s':>12} |")  # fmt: skip
    print(f"|{'-' * 18}|{'-' * 12}|{'-' * 10}|{'-' * 9}|{'-' * 10}|{'-' * 14}|{'-' * 14}|")
    for name, r in (("MLSD", mlsd), ("LIST + MDTM", listed)):
        print(f"| {name:<16} | {r['first_wall']:10.2f} | {r['first_requests']:8.0f} |"
              f" {r['wall']:7.3f} | {r['requests']:8.0f} | {r['cpu']:12.3f} |"
              f" {r['server_cpu']:12.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
