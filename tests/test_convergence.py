"""Convergence, the core property: random creates, edits, deletes and renames in several
locations always end with identical locations, and no version that was the newest is lost.

Two layers: many examples through the real engine over in-memory locations (fast), and fewer
over real folders with real watchdog observers and the running engine (with and without pauses
between operations).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from app.engine.conflicts import is_conflict_copy
from app.engine.engine import Engine
from app.engine.index import StateIndex
from app.engine.settings import EngineSettings
from tests.engine_fixtures import Rig
from tests.helpers import describe_trees, tree, trees_equal, wait_until, write_file
from tests.links import swap_in_link, under_link
from tests.memory_location import MemoryLocation

NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
NAMES = ["a.txt", "b.txt", "dir/c.txt", "dir/sub/d.txt", "é ü.txt"]
#: Names legal in a Linux folder that a ZIP archive or a server could not all hold.
ODD_NAMES = [
    os.fsdecode(b"not-utf8-\xff.txt"),
    "col:on.txt",
    "back\\slash.txt",
    "dir/ spaces .txt",
    "two\nlines.txt",
    "日本/ümlaut 🙂.txt",
]


@dataclass(frozen=True)
class Op:
    """One user action in location ``where``."""

    kind: str  # write | slow (written in chunks with pauses) | delete | rename
    where: int
    path: str
    dest: str = ""


def ops_strategy(
    n_locations: int, max_ops: int, names: list[str] = NAMES, links: list[str] | None = None
) -> st.SearchStrategy[list[Op]]:
    """Random writes, slow writes, deletes and renames; with ``links``, folder-to-link swaps."""
    where = st.integers(0, n_locations - 1)
    name = st.sampled_from(names)
    ops = [
        st.builds(Op, st.just("write"), where, name),
        st.builds(Op, st.just("slow"), where, name),
        st.builds(Op, st.just("delete"), where, name),
        st.builds(Op, st.just("rename"), where, name, name),
    ]
    if links:
        ops.append(st.builds(Op, st.just("link"), where, st.sampled_from(links)))
    return st.lists(st.one_of(ops), min_size=1, max_size=max_ops)


# ----- the fast layer: real engine, in-memory locations ------------------------------------


class MemoryWorld:
    """Locations, an index on disk and a clock that gives every write a distinct mtime."""

    def __init__(self, n: int, state: Path) -> None:
        self.locations = [MemoryLocation(f"m{i}") for i in range(n)]
        self.state = state
        self.clock = 1_700_000_000 * 10**9
        self.counter = 0

    def apply(self, op: Op) -> None:
        files = self.locations[op.where].files
        if op.kind in ("write", "slow"):  # no watcher here: a slow write is a write
            self.counter += 1
            self.clock += 3 * 10**9
            files[op.path] = (f"v{self.counter}@{op.where}:{op.path}".encode(), self.clock)
        elif op.kind == "delete":
            files.pop(op.path, None)
        elif op.path in files and op.dest != op.path:
            files[op.dest] = files.pop(op.path)

    def sync(self) -> None:
        index = StateIndex(self.state)
        try:
            Engine(self.locations, index, EngineSettings()).start(watch=False)
        finally:
            index.close()

    def snapshot(self) -> list[dict[str, tuple[bytes, int]]]:
        return [dict(loc.files) for loc in self.locations]


def check_round(
    before: list[dict[str, tuple[bytes, int]]],
    after_ops: list[dict[str, tuple[bytes, int]]],
    result: dict[str, bytes],
) -> None:
    """The newest changed version of each path is at the path; every other changed version
    survives somewhere (as a conflict copy); a path deleted and not edited is gone."""
    contents = set(result.values())
    paths = set().union(*before, *after_ops)
    for path in paths:
        changed = [
            after[path]
            for b, after in zip(before, after_ops, strict=True)
            if path in after and b.get(path) != after[path]
        ]
        deleted = any(path in b and path not in a for b, a in zip(before, after_ops, strict=True))
        if changed:
            newest = max(changed, key=lambda v: v[1])
            assert result.get(path) == newest[0], f"{path}: newest version lost"
            for data, _ in changed:
                assert data in contents, f"{path}: a changed version vanished"
        elif deleted and not is_conflict_copy(path):
            assert path not in result, f"{path}: delete not propagated"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rounds=st.lists(ops_strategy(3, 12), min_size=1, max_size=4))
def test_engine_converges_on_random_operations_in_memory(rounds: list[list[Op]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = MemoryWorld(3, Path(tmp) / "index.sqlite")
        world.sync()
        for ops in rounds:
            before = world.snapshot()
            for op in ops:
                world.apply(op)
            after_ops = world.snapshot()
            world.sync()
            final = [{p: d for p, (d, _) in loc.files.items()} for loc in world.locations]
            assert final[0] == final[1] == final[2], "locations differ after sync"
            check_round(before, after_ops, final[0])


# ----- the real layer: real folders, real watchers, the running engine ---------------------


def apply_to_folder(roots: list[Path], op: Op, n: int, racing: bool = False) -> bytes | None:
    """Apply ``op`` to a real folder; return the bytes written to the op's final path.

    Every other slow write reopens the file for each chunk, except when ``racing`` the engine:
    a writer that appends by name to a file the engine just replaced (its version lost a
    conflict) appends to the winner, so the bytes it meant never exist whole anywhere.
    """
    root = roots[op.where]
    src = root / op.path
    if op.kind == "write":
        data = f"live {n} in {op.where}: {op.path}".encode("utf-8", "surrogateescape")
        src.parent.mkdir(parents=True, exist_ok=True)
        tmp = src.with_name(f".~{src.name}.tmp")  # save like an editor: write, then rename
        tmp.write_bytes(data)
        os.replace(tmp, src)
        return data
    if op.kind == "slow":
        return write_slowly(
            src,
            f"slow {n} in {op.where}: {op.path}".encode("utf-8", "surrogateescape"),
            reopen=n % 2 == 1 and not racing,
        )
    if op.kind == "delete":
        if src.is_file():
            src.unlink()
        return None
    if src.is_file() and op.dest != op.path:
        dest = root / op.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        data = src.read_bytes()
        os.replace(src, dest)
        return data
    return None


def write_slowly(path: Path, data: bytes, reopen: bool) -> bytes:
    """Write ``data`` in place in three chunks with pauses, like a download: kept open, or
    reopened to append each chunk (``reopen``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = [data[len(data) * i // 3 : len(data) * (i + 1) // 3] for i in range(3)]
    if reopen:
        path.write_bytes(b"")
        for part in chunks:
            with open(path, "ab") as f:
                f.write(part)
            time.sleep(0.1)
        return data
    with open(path, "wb") as f:
        for part in chunks:
            f.write(part)
            f.flush()
            time.sleep(0.1)
    return data


def trashed(roots: list[Path]) -> set[bytes]:
    """Every version kept in the locations' trash folders."""
    return {
        p.read_bytes() for r in roots for p in (r / ".filesync/trash").rglob("*") if p.is_file()
    }


def live_settings(examples: int) -> settings:
    """Settings for examples run against the live engine: each takes seconds, so no deadline
    and no shrinking (shrinking one could take many minutes); the failing example is printed."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=NO_SHRINK,
    )


@live_settings(12)
@given(ops=ops_strategy(3, 15, NAMES + ODD_NAMES), pause=st.booleans())
def test_running_engine_converges_on_real_folders(ops: list[Op], pause: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        roots = [Path(tmp, n) for n in "abc"]
        for root in roots:
            root.mkdir()
        rig = Rig(Path(tmp), roots)
        rig.start(ignore=(".~*",))
        try:
            last_write: dict[str, bytes | None] = {}
            for n, op in enumerate(ops):
                data = apply_to_folder(roots, op, n, racing=not pause)
                if op.kind in ("write", "slow") and data is not None:
                    last_write[op.path] = data
                elif op.kind == "rename" and data is not None:
                    last_write[op.dest] = data
                    last_write[op.path] = None
                elif op.kind == "delete":
                    last_write[op.path] = None
                if pause:
                    wait_until(lambda: trees_equal(*roots), 30, lambda: describe_trees(*roots))
                    time.sleep(0.002)  # distinct mtimes on coarse-clock filesystems
            wait_until(lambda: trees_equal(*roots), 60, lambda: describe_trees(*roots))
            final = tree(roots[0])
            kept = set(final.values()) | trashed(roots)
            for path, data in last_write.items():
                if data is None:
                    continue
                if pause:
                    assert final.get(path) == data, f"{path}: last write lost"
                else:
                    # Racing the engine, a save can land in the instant between its last check
                    # and its rename; that version is then in the trash, never gone.
                    assert data in kept, f"{path}: last write lost"
        finally:
            rig.stop()


# ----- the real layer with symbolic links: a folder replaced by a link is held, never lost ----

LINKABLE = ["dir", "dir/sub"]


def visible(roots: list[Path]) -> list[dict[str, bytes]]:
    """Each root's files that no link in it holds (``tree`` does not descend into links)."""
    return [tree(r) for r in roots]


def agree_where_not_held(roots: list[Path]) -> bool:
    """For every path, the locations that do not hold it behind a link agree on it."""
    trees = visible(roots)
    for path in set().union(*trees):
        seen = {trees[i].get(path) for i, r in enumerate(roots) if not under_link(r, path)}
        if len(seen) > 1:
            return False
    return True


@live_settings(12)
@given(ops=ops_strategy(3, 15, links=LINKABLE), pause=st.booleans())
def test_running_engine_holds_files_under_symlinked_folders(ops: list[Op], pause: bool) -> None:
    """A folder replaced by a link to a folder outside the root (moved to another disk): the
    other locations keep syncing among themselves and never lose the files under it."""
    with tempfile.TemporaryDirectory() as tmp:
        roots = [Path(tmp, n) for n in "abc"]
        for root in roots:
            root.mkdir()
        for name in NAMES:  # something to hold: every link op then hides synced files
            write_file(roots[0] / name, f"seed {name}")
        rig = Rig(Path(tmp), roots)
        rig.start(ignore=(".~*",))
        try:
            wait_until(lambda: trees_equal(*roots), 60, lambda: describe_trees(*roots))
            last_write: dict[str, bytes | None] = {}
            held: set[str] = set()  # synced files that were under a folder when it became a link
            moved_out: dict[Path, dict[str, bytes]] = {}  # each link's target, as it was made
            for n, op in enumerate(ops):
                root = roots[op.where]
                if under_link(root, op.path) or (op.dest and under_link(root, op.dest)):
                    continue  # through a link: outside every location, FileSync never sees it
                if op.kind == "link":
                    wait_until(lambda: agree_where_not_held(roots), 60, "converged before link")
                    held |= {p for p in tree(root) if p.startswith(op.path + "/")}
                    target = Path(tmp, "outside", f"{op.where}-{n}")
                    swap_in_link(root / op.path, target)
                    moved_out[target] = tree(target)
                    continue
                data = apply_to_folder(roots, op, n, racing=not pause)
                if op.kind in ("write", "slow") and data is not None:
                    last_write[op.path] = data
                elif op.kind == "rename" and data is not None:
                    last_write[op.dest] = data
                    last_write[op.path] = None
                    held.discard(op.path)
                elif op.kind == "delete":
                    last_write[op.path] = None
                    held.discard(op.path)
                if pause:
                    wait_until(lambda: agree_where_not_held(roots), 30, "converged")
                    time.sleep(0.002)
            assert rig.engine is not None
            rig.engine.sync_now()  # a full rescan, like the periodic one, must not change that
            assert rig.engine.wait_idle(60)
            wait_until(lambda: agree_where_not_held(roots), 60, lambda: describe_trees(*roots))
            for target, files in moved_out.items():
                assert tree(target) == files, f"written through the link to {target.name}"
            trees = visible(roots)
            outside = Path(tmp, "outside")
            kept = {v for t in trees for v in t.values()} | trashed(roots)
            kept |= {p.read_bytes() for p in outside.rglob("*") if p.is_file()}
            for path, data in last_write.items():
                free = [i for i, r in enumerate(roots) if not under_link(r, path)]
                if data is None or not free:
                    continue
                if pause:
                    assert trees[free[0]].get(path) == data, f"{path}: last write lost"
                else:
                    assert data in kept, f"{path}: last write lost"
            for path in held:
                for i, r in enumerate(roots):
                    if not under_link(r, path):
                        assert path in trees[i], f"{path}: deleted in {r.name} behind a link"
        finally:
            rig.stop()
