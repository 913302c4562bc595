"""Benchmark: SFTP uploads and downloads through SftpLocation beside rsync, sftp and rclone.

Run: ``.venv/bin/python bench/bench_sftp.py [--small 2000] [--big 20] [--rounds 2] [--polls 5]``

OpenSSH's sshd serves a temporary folder on 127.0.0.1 (as in the tests: its own host key and
client key, ``$HOME`` pointed at a temporary folder). Each tool moves the same tree into its
own empty folder, one after the other within each round (interleaved, so a busy moment on
this shared machine hits every tool alike); the best round per tool is reported:

* FileSync: ``SftpLocation.write_many()`` in groups of 256, as the engine copies (temp name,
  time set, posix-rename; a group's small files pipelined together) and
  for downloads, groups announced with ``read_ahead()`` (the small files of a group fetched
  together), then ``open_read()`` per file, as the engine copies; one connection;
* ``rsync -a -e ssh``, ``sftp -b`` (``put -r`` / ``get -r``) and ``rclone copy`` (its default
  four transfers in parallel over SFTP).

Idle cost: ``scan()`` of a 10,000-file tree in 100 folders, as the poller runs it.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.engine.copies import GROUP_BYTES, GROUP_FILES
from app.locations import LocationOptions, open_location
from app.locations.base import FileMeta, WriteJob
from app.locations.sftp.location import SftpLocation
from tests.sshd_server import HOST, RCLONE, SftpServer

MIB = 1024 * 1024


def make_tree(root: Path, small: int, big: int) -> tuple[Path, Path]:
    """``small`` files of 1-8 KiB in folders of 100, and ``big`` files of 10 MiB."""
    rng = random.Random(7)
    small_dir, big_dir = root / "small", root / "big"
    for i in range(small):
        path = small_dir / f"d{i // 100:03}" / f"f{i:05}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(1024, 8192)))
    big_dir.mkdir(parents=True)
    for i in range(big):
        (big_dir / f"big{i:02}.bin").write_bytes(os.urandom(10 * MIB))
    return small_dir, big_dir


def files_of(root: Path) -> list[str]:
    """The files below ``root``, FileSync's own ``.filesync/`` (its hub journal) left out."""
    found = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return sorted(rel for rel in found if not rel.startswith(".filesync"))


class Tools:
    """The commands for each tool against one sshd."""

    def __init__(self, server: SftpServer, work: Path) -> None:
        self.server = server
        self.work = work
        self.ssh = (
            f"ssh -i {server.client_key} -p {server.port} -o BatchMode=yes "
            f"-o UserKnownHostsFile={server.known_hosts} -o StrictHostKeyChecking=yes"
        )
        self.log = open(work / "tools.log", "ab")  # noqa: SIM115 - closed in close()

    def close(self) -> None:
        self.log.close()

    def run(self, command: list[str], stdin: str = "") -> None:
        data = stdin.encode() if stdin else None
        subprocess.run(command, check=True, stdout=self.log, stderr=subprocess.STDOUT, input=data)

    def location(self, remote: Path) -> SftpLocation:
        loc = open_location(self.server.url(path=str(remote)), LocationOptions(connect_timeout=30))
        assert isinstance(loc, SftpLocation)
        loc.open()
        return loc

    # --- uploads (local -> remote folder, which exists and is empty) -----------------------

    def up_filesync(self, local: Path, remote: Path) -> None:
        """As the engine hands copies over: ``write_many`` in groups of up to 256 files."""
        loc = self.location(remote)
        names = files_of(local)
        try:
            with loc.batch():
                for start in range(0, len(names), 256):
                    jobs = [
                        WriteJob(rel, partial(open, local / rel, "rb"),
                                 (local / rel).stat().st_mtime_ns, None)
                        for rel in names[start : start + 256]
                    ]  # fmt: skip
                    outcomes = loc.write_many(jobs)
                    failed = [o for o in outcomes if not isinstance(o, FileMeta)]
                    assert not failed, failed
        finally:
            loc.close()

    def up_rsync(self, local: Path, remote: Path) -> None:
        self.run(["rsync", "-a", "-e", self.ssh, f"{local}/", f"root@{HOST}:{remote}/"])

    def up_sftp(self, local: Path, remote: Path) -> None:
        self.run(self._sftp_cmd(), stdin=f"put -pr {local}/. {remote}\n")

    def up_rclone(self, local: Path, remote: Path) -> None:
        self.run([RCLONE, "copy", str(local), f":sftp:{remote}", *self._rclone_flags()])

    # --- downloads (remote folder -> empty local folder) -----------------------------------

    def down_filesync(self, remote: Path, local: Path) -> None:
        """As the engine copies from a server: groups of up to 256 files or 16 MiB, each
        announced with ``read_ahead``, then every file opened with ``open_read``."""
        loc = self.location(remote)
        try:
            group: list[tuple[str, FileMeta]] = []
            size = 0
            for item in loc.scan().items():
                group.append(item)
                size += item[1].size
                if len(group) >= GROUP_FILES or size >= GROUP_BYTES:
                    self._down_group(loc, group, local)
                    group, size = [], 0
            self._down_group(loc, group, local)
        finally:
            loc.close()

    @staticmethod
    def _down_group(loc: SftpLocation, group: list[tuple[str, FileMeta]], local: Path) -> None:
        with loc.read_ahead(group):
            for rel, _ in group:
                target = local / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with loc.open_read(rel) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, 1024 * 1024)

    def down_rsync(self, remote: Path, local: Path) -> None:
        self.run(["rsync", "-a", "-e", self.ssh, f"root@{HOST}:{remote}/", f"{local}/"])

    def down_sftp(self, remote: Path, local: Path) -> None:
        self.run(self._sftp_cmd(), stdin=f"get -pr {remote}/. {local}\n")

    def down_rclone(self, remote: Path, local: Path) -> None:
        self.run([RCLONE, "copy", f":sftp:{remote}", str(local), *self._rclone_flags()])

    def _sftp_cmd(self) -> list[str]:
        s = self.server
        return [
            "sftp", "-q", "-b", "-", "-i", str(s.client_key), "-P", str(s.port),
            "-o", f"UserKnownHostsFile={s.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            f"root@{HOST}",
        ]  # fmt: skip

    def _rclone_flags(self) -> list[str]:
        s = self.server
        return [
            "--sftp-host", HOST, "--sftp-port", str(s.port), "--sftp-user", "root",
            "--sftp-key-file", str(s.client_key), "--sftp-known-hosts-file", str(s.known_hosts),
            "--config", str(self.work / "rclone.conf"), "--log-level", "ERROR",
            "--sftp-disable-hashcheck",  # else it runs md5sum on the server per file
        ]  # fmt: skip


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def transfers(tools: Tools, trees: dict[str, Path], rounds: int) -> None:
    names = ["filesync", "rsync", "sftp", "rclone"]
    remote_base = tools.server.root
    for label, local in trees.items():
        count = len(files_of(local))
        size = sum((local / r).stat().st_size for r in files_of(local)) / MIB
        for direction in ("upload", "download"):
            best: dict[str, float] = {}
            for r in range(rounds):
                for name in names:
                    remote = remote_base / f"{label}-{name}-{r}"
                    if direction == "upload":
                        shutil.rmtree(remote, ignore_errors=True)
                        remote.mkdir()
                        up = getattr(tools, f"up_{name}")
                        seconds = timed(lambda u=up, s=local, t=remote: u(s, t))
                        assert len(files_of(remote)) == count, (name, len(files_of(remote)))
                    else:
                        source = remote_base / f"{label}-filesync-{r}"
                        target = tools.work / f"down-{label}-{name}-{r}"
                        shutil.rmtree(target, ignore_errors=True)
                        target.mkdir()
                        down = getattr(tools, f"down_{name}")
                        seconds = timed(lambda d=down, s=source, t=target: d(s, t))
                        assert len(files_of(target)) == count, (name, len(files_of(target)))
                        shutil.rmtree(target)
                    best[name] = min(best.get(name, 1e9), seconds)
            reference = min(v for k, v in best.items() if k != "filesync")
            row = ", ".join(f"{k} {v:.2f} s" for k, v in best.items())
            ratio = best["filesync"] / reference
            print(f"{direction} {label} ({count} files, {size:.0f} MiB): {row}; "
                  f"FileSync / best other = {ratio:.2f}x", flush=True)  # fmt: skip


def idle_cost(tools: Tools, polls: int) -> None:
    tree = tools.server.root / "idle"
    rng = random.Random(3)
    for i in range(10_000):
        path = tree / f"d{i // 100:03}" / f"f{i:05}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(100))
        os.utime(path, (1_600_000_000, 1_600_000_000))
    loc = tools.location(tree)
    try:
        loc.scan()  # the first, cold scan
        cpu, wall, requests = time.process_time(), time.perf_counter(), loc.request_count
        for _ in range(polls):
            assert len(loc.scan()) == 10_000
        per_poll = (loc.request_count - requests) / polls
        print(f"idle poll of 10,000 files in 100 folders: {per_poll:.0f} requests, "
              f"{(time.perf_counter() - wall) / polls:.2f} s wall, "
              f"{(time.process_time() - cpu) / polls:.2f} s client CPU per poll")  # fmt: skip
    finally:
        loc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000, help="small files (default 2000)")
    parser.add_argument("--big", type=int, default=20, help="10 MiB files (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per tool (default 2)")
    parser.add_argument("--polls", type=int, default=5, help="idle polls measured (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sftp-") as tmp:
        work = Path(tmp)
        home = work / "home"
        (home / ".ssh").mkdir(parents=True)
        os.environ["HOME"] = str(home)
        os.environ.pop("SSH_AUTH_SOCK", None)
        small, big = make_tree(work / "src", args.small, args.big)
        server = SftpServer(work, "sshd")
        server.start()
        tools = Tools(server, work)
        try:
            transfers(tools, {"small": small, "big": big}, args.rounds)
            idle_cost(tools, args.polls)
        finally:
            tools.close()
            server.stop()


if __name__ == "__main__":
    main()
