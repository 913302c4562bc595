"""Many machines, one bucket: FileSyncs with their own folders and state meet in one prefix.

"Machine A" is an engine over folder A and the bucket prefix, "machine B" another over folder B
and the same prefix, each with its own index. Both servers: moto honours ``If-Match``, rclone
serve s3 does not (the check just before the PUT guards instead). Also the live convergence
property test over two folders and a bucket that another program edits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.engine import Engine, EngineSettings
from app.engine.index import StateIndex
from app.locations import LocationOptions, open_location
from app.locations.base import Location
from tests import test_ftp_hub as ftp_hub
from tests.helpers import tree, wait_until
from tests.s3_server import S3Server
from tests.test_convergence import Op, apply_to_folder, ops_strategy
from tests.test_convergence_mixed import Mix, check_ops, run_examples

PREFIX = "hub/"


def save(folder: Path, name: str, data: bytes, mtime: float) -> None:
    """Save like an editor does: write a temp file, stamp it, rename it over the old one."""
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".~{target.name}.tmp")
    temp.write_bytes(data)
    os.utime(temp, (mtime, mtime))
    os.replace(temp, target)


def visible(folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree(folder).items() if not k.startswith(".~")}


class Machine(ftp_hub.Machine):
    """One FileSync: a folder, its own state index, and an engine over the folder and bucket."""

    bucket: Location | None = None

    @classmethod
    def over_bucket(cls, tmp: Path, name: str, url: str) -> Machine:
        folder = tmp / name
        folder.mkdir()
        return cls(
            tmp,
            [folder],
            [url],
            settings=EngineSettings(debounce=0.03, poll_interval=0.2, ignore=(".~*",)),
            state_file=tmp / f"state-{name}" / "index.sqlite",
            options=LocationOptions(connect_timeout=5),
        )

    @property
    def name(self) -> str:
        return self.folder.name

    def locations(self) -> list[Location]:
        found = super().locations()
        self.bucket = found[-1]
        return found


@pytest.fixture(params=["moto", "rclone"])
def hub(request: pytest.FixtureRequest, s3_servers: dict[str, S3Server]) -> tuple[S3Server, str]:
    server = s3_servers[request.param]
    return server, server.new_bucket()


@pytest.fixture
def machines(tmp_path: Path, hub: tuple[S3Server, str]) -> Iterator[tuple[Machine, Machine]]:
    server, bucket = hub
    url = server.url(bucket, PREFIX.rstrip("/"))
    a, b = Machine.over_bucket(tmp_path, "a", url), Machine.over_bucket(tmp_path, "b", url)
    yield a, b
    a.stop()
    b.stop()


def in_bucket(hub: tuple[S3Server, str]) -> dict[str, bytes]:
    server, bucket = hub
    return server.keys(bucket, PREFIX)


def all_agree(a: Machine, b: Machine, hub: tuple[S3Server, str]) -> bool:
    return visible(a.folder) == visible(b.folder) == in_bucket(hub)


def describe(a: Machine, b: Machine, hub: tuple[S3Server, str]) -> str:
    trees = [visible(a.folder), visible(b.folder), in_bucket(hub)]
    names = sorted(set().union(*trees))
    rows = [f"  {n}: " + " | ".join(str(t.get(n, b"-"))[:40] for t in trees) for n in names]
    return "A | B | bucket differ:\n" + "\n".join(rows)


def test_edits_new_files_deletes_and_renames_cross(
    machines: tuple[Machine, Machine], hub: tuple[S3Server, str]
) -> None:
    a, b = machines
    now = time.time()
    save(a.folder, "doc.txt", b"A's first draft", now - 60)
    save(b.folder, "notes/b.txt", b"B's notes", now - 50)
    a.start()
    b.start()
    agree = lambda: all_agree(a, b, hub)  # noqa: E731
    wait_until(agree, 60, lambda: describe(a, b, hub))
    assert visible(a.folder) == {"doc.txt": b"A's first draft", "notes/b.txt": b"B's notes"}
    save(b.folder, "doc.txt", b"B's edit of the draft", now - 40)
    wait_until(lambda: visible(a.folder).get("doc.txt") == b"B's edit of the draft", 60)
    os.replace(a.folder / "notes/b.txt", a.folder / "notes/renamed.txt")
    wait_until(lambda: "notes/renamed.txt" in visible(b.folder), 60, lambda: describe(a, b, hub))
    (b.folder / "doc.txt").unlink()
    wait_until(lambda: "doc.txt" not in visible(a.folder), 60, lambda: describe(a, b, hub))
    wait_until(agree, 60, lambda: describe(a, b, hub))
    assert visible(a.folder) == {"notes/renamed.txt": b"B's notes"}


def conflict_copies(folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in visible(folder).items() if ".sync-conflict-" in k}


def test_concurrent_edits_end_with_one_winner_and_the_loser_kept_everywhere(
    machines: tuple[Machine, Machine], hub: tuple[S3Server, str]
) -> None:
    a, b = machines
    now = time.time()
    save(a.folder, "doc.txt", b"the original", now - 100)
    assert a.once()
    assert b.once()
    save(a.folder, "doc.txt", b"A's concurrent edit", now - 20)
    save(b.folder, "doc.txt", b"B's later concurrent edit", now - 10)
    a.start()
    b.start()
    wait_until(
        lambda: all_agree(a, b, hub) and len(conflict_copies(a.folder)) == 1,
        60,
        lambda: describe(a, b, hub),
    )
    for machine in (a, b):
        assert visible(machine.folder)["doc.txt"] == b"B's later concurrent edit"
        assert list(conflict_copies(machine.folder).values()) == [b"A's concurrent edit"]


def test_a_machine_whose_clock_runs_ahead_does_not_win_over_a_later_edit(
    machines: tuple[Machine, Machine], hub: tuple[S3Server, str]
) -> None:
    """A's clock is an hour ahead: its save carries a time B's later edit never reaches."""
    a, b = machines
    now = time.time()
    save(a.folder, "doc.txt", b"A's save, stamped an hour ahead", now + 3600)
    assert a.once()
    assert b.once()
    assert visible(b.folder)["doc.txt"] == b"A's save, stamped an hour ahead"
    save(b.folder, "doc.txt", b"B's edit, made later", now)
    assert b.once()
    assert a.once()
    for machine in (a, b):
        assert visible(machine.folder) == {"doc.txt": b"B's edit, made later"}
    assert in_bucket(hub) == {"doc.txt": b"B's edit, made later"}


def test_nothing_moves_once_idle(
    machines: tuple[Machine, Machine], hub: tuple[S3Server, str]
) -> None:
    """After converging, each poll costs one listing request and nothing is written."""
    a, b = machines
    now = time.time()
    for i in range(12):
        save(a.folder if i % 2 else b.folder, f"f{i % 3}/{i}.txt", b"x" * i, now - 100 + i)
    a.start()
    b.start()
    wait_until(lambda: all_agree(a, b, hub) and len(visible(a.folder)) == 12, 60)
    # Let the last polls and their recording settle: two more polls each, engines idle.
    polled = [m.bucket.request_count + 2 for m in (a, b)]  # type: ignore[union-attr]
    wait_until(
        lambda: (
            all(m.bucket.request_count >= n for m, n in zip((a, b), polled, strict=True))  # type: ignore[union-attr]
            and all(m.engine is not None and m.engine.wait_idle(0.05) for m in (a, b))
        ),
        30,
    )
    server, bucket = hub
    client = server.client()
    before = {o["Key"]: o["ETag"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    times = {m.name: {p.name: p.stat().st_mtime_ns for p in m.folder.rglob("*")} for m in (a, b)}
    counts = [m.bucket.request_count for m in (a, b)]  # type: ignore[union-attr]
    started = time.monotonic()
    time.sleep(2.0)  # deliberately idle: proves nothing is written and few requests are sent
    elapsed = time.monotonic() - started
    after = {o["Key"]: o["ETag"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert after == before
    for machine, count in zip((a, b), counts, strict=True):
        polls = elapsed / 0.2 + 2
        sent = machine.bucket.request_count - count  # type: ignore[union-attr]
        assert sent <= polls, f"{machine.name}: {sent} requests in {elapsed:.1f} s"
        now_times = {p.name: p.stat().st_mtime_ns for p in machine.folder.rglob("*")}
        assert now_times == times[machine.name]


# ----- the live convergence property test: two folders and a bucket -----------------------


class BucketMix(Mix):
    """Two folders and a bucket prefix that "another program" edits with plain S3 calls."""

    def __init__(self, tmp: Path, server: S3Server) -> None:
        self.kind = "s3"
        self.server = None  # Mix's FTP server
        self.s3 = server
        self.bucket = server.new_bucket()
        self.client = server.client()
        self.folders = [tmp / "a", tmp / "b"]
        for f in self.folders:
            f.mkdir()
        self.index = StateIndex(tmp / "index.sqlite")
        locations = [open_location(f"folder:{f}") for f in self.folders]
        locations.append(open_location(server.url(self.bucket, "mix")))
        self.engine = Engine(locations, self.index, EngineSettings(poll_interval=0.1))

    def third_tree(self) -> dict[str, bytes]:
        return self.s3.keys(self.bucket, "mix/")

    def apply(self, op: Op, n: int, racing: bool = False) -> bytes | None:
        if op.where < 2:
            return apply_to_folder(self.folders, op, n, racing)
        key, stamp = f"mix/{op.path}", {"mtime": f"{time.time():.9f}"}
        if op.kind in ("write", "slow"):  # an object is always written whole
            data = f"s3 {n}: {op.path}".encode()
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=stamp)
            return data
        current = self.third_tree().get(op.path)
        if op.kind == "delete":
            self.client.delete_object(Bucket=self.bucket, Key=key)
            return None
        if current is None or op.dest == op.path:
            return None
        self.client.put_object(
            Bucket=self.bucket, Key=f"mix/{op.dest}", Body=current, Metadata=stamp
        )
        self.client.delete_object(Bucket=self.bucket, Key=key)
        return current


def test_folders_and_a_bucket_converge_on_random_operations(moto_s3: S3Server) -> None:
    run_examples(4, ops_strategy(3, 8), lambda tmp: BucketMix(tmp, moto_s3), check_ops)
