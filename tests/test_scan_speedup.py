"""The C speedups do exactly what the pure-Python loops they replace do; those stay the
fallback where the speedups did not build.

The folder scan's (``app/locations/folder/_scan.c``): both loops run over the same real trees
(every odd case a folder can hold, then random trees) and must give the same files with the
same metas in the same order, the same links, the same hard links, and the same error. The
index load's (``app/engine/_mirror.c``, and ``app/engine/_rows.c``, which reads the rows
itself): the same mirror from the same rows. CI must run the C code: the first test fails when
it did not build, unless ``FILESYNC_PURE_PYTHON=1`` asks for the fallback on purpose.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine import index as index_module
from app.engine.index import StateIndex, load_rows
from app.locations.base import FileMeta
from app.locations.folder import scan as scan_module
from app.locations.folder.nofollow import LinkFreeTree
from app.locations.folder.scan import TreeScan
from tests.helpers import write_file

SETPRIV = shutil.which("setpriv")
ROOT = Path(__file__).resolve().parent.parent


class PythonScan(TreeScan):
    """The walk with the pure-Python per-folder loop: the reference the speedup must equal."""

    _list = TreeScan._list_python


def outcome(cls: type[TreeScan], root: Path, prefix: str = "", clean: bool = False) -> Any:
    """Everything a scan gives back, in order, or the error it raised."""
    try:
        found = cls(LinkFreeTree(root, f"folder:{root}"), prefix, clean_temps=clean).run()
    except Exception as exc:
        return ["error", type(exc).__name__, str(exc)]
    for rel, meta in found.files.items():
        assert type(meta) is FileMeta and rel is sys.intern(rel), rel
    return [list(found.files.items()), sorted(found.links), list(found.hard_links.items())]


def same_both_ways(root: Path, prefix: str = "") -> Any:
    """Scan ``root`` with both loops; they must agree. Returns the outcome."""
    fast = outcome(TreeScan, root, prefix)
    assert fast == outcome(PythonScan, root, prefix)
    return fast


def bpath(root: Path, *parts: bytes) -> bytes:
    return b"/".join([os.fsencode(root), *parts])


def make_tricky_tree(root: Path) -> None:
    """A folder holding every kind of entry, name and meta the scan treats specially."""
    for rel in (
        "a.txt",
        ".filesyncignore",
        ".filesync/index.sqlite",
        ".filesync-tmp-root",
        ".filesync-tmp-folder/inside.txt",
        "sub/.filesyncignore",
        "sub/.filesync/notes.txt",
        "sub/.filesync-tmp-deep",
        "sub/.filesync-tmpfile",
        "sub/deeper/still/.filesync-tmp-deepest",
        "sub/deeper/still/kept.txt",
        "ünïcode/日本語.txt",
        "with space/and;semi",
    ):
        write_file(root / rel, rel)
    fd = os.open(bpath(root, b"caf\xe9.txt"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"latin-1 name")
    os.close(fd)
    os.makedirs(bpath(root, b"d\xff\xfe"))
    with open(bpath(root, b"d\xff\xfe", b"in-\x80.bin"), "wb") as f:
        f.write(b"bytes folder")
    (root / "link-to-file").symlink_to(root / "a.txt")
    (root / "link-to-folder").symlink_to(root / "sub", target_is_directory=True)
    (root / "sub/dangling").symlink_to(root / "nowhere")
    (root / ".filesync-tmp-link").symlink_to(root / "a.txt")
    os.link(root / "a.txt", root / "sub/hard.txt")
    os.link(root / "a.txt", root / "ünïcode/hard too.txt")
    (root / "empty/deeper").mkdir(parents=True)
    os.mkfifo(root / "sub/pipe")
    old = write_file(root / "old.txt", "before 1970")
    os.utime(old, ns=(-1_500_000_000_123_456_789, -1_500_000_000_123_456_789))
    future = write_file(root / "future.txt", "after 2200")
    os.utime(future, ns=(8_000_000_000_987_654_321, 8_000_000_000_987_654_321))
    with open(root / "sparse-6GiB.bin", "wb") as f:
        f.truncate(6 * 1024**3)


def test_the_speedup_is_built_where_ci_runs() -> None:
    if os.environ.get("FILESYNC_PURE_PYTHON") == "1":
        pytest.skip("FILESYNC_PURE_PYTHON=1: the pure-Python scan on purpose")
    rebuild = "did not build: run `.venv/bin/pip install -e .` (needs gcc and Python's headers)"
    assert scan_module.SPEEDUP, f"app/locations/folder/_scan.c {rebuild}"
    assert index_module.speedup(), f"app/engine/_mirror.c {rebuild}"
    assert index_module.reads_directly(), f"app/engine/_rows.c {rebuild} (and libsqlite3-dev)"


def test_both_loops_list_a_tricky_tree_alike(tmp_path: Path) -> None:
    make_tricky_tree(tmp_path)
    files, links, hard_links = same_both_ways(tmp_path)
    listed = dict(files)
    assert sorted(listed) == sorted(
        [
            "a.txt",
            "caf\udce9.txt",
            "d\udcff\udcfe/in-\udc80.bin",
            "future.txt",
            "old.txt",
            "sparse-6GiB.bin",
            "sub/.filesync-tmpfile",
            "sub/.filesync/notes.txt",
            "sub/.filesyncignore",
            "sub/deeper/still/kept.txt",
            "sub/hard.txt",
            "with space/and;semi",
            "ünïcode/hard too.txt",
            "ünïcode/日本語.txt",
        ]
    )
    assert links == ["link-to-file", "link-to-folder", "sub/dangling"]
    assert dict(hard_links).keys() == {"a.txt", "sub/hard.txt", "ünïcode/hard too.txt"}
    assert listed["old.txt"].mtime_ns == -1_500_000_000_123_456_789
    assert listed["future.txt"].mtime_ns == 8_000_000_000_987_654_321
    assert listed["sparse-6GiB.bin"].size == 6 * 1024**3
    for rel, meta in listed.items():
        assert meta == scan_module.file_meta(os.lstat(bpath(tmp_path, os.fsencode(rel))))


@pytest.mark.parametrize(
    "prefix", ["sub", "sub/deeper", "ünïcode", "link-to-folder", "a.txt", "missing", "empty"]
)
def test_both_loops_list_a_prefix_alike(tmp_path: Path, prefix: str) -> None:
    make_tricky_tree(tmp_path)
    same_both_ways(tmp_path, prefix)


def test_both_loops_remove_the_same_temp_files(tmp_path: Path) -> None:
    roots = [tmp_path / "c", tmp_path / "python"]
    for root in roots:
        make_tricky_tree(root)
    fast = outcome(TreeScan, roots[0], clean=True)
    python = outcome(PythonScan, roots[1], clean=True)
    assert sorted(dict(fast[0])) == sorted(dict(python[0]))  # two trees: other inodes, times
    assert fast[1] == python[1]

    def left(root: Path) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob(".filesync-tmp-*"))

    assert left(roots[0]) == left(roots[1]) == [".filesync-tmp-folder"]  # folders are kept


def test_a_tree_deeper_than_the_held_descriptors_lists_alike(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*[f"l{n}" for n in range(80)])
    write_file(deep / "bottom.txt", "deep")
    (deep.parent / "link").symlink_to(tmp_path, target_is_directory=True)
    files, links, _ = same_both_ways(tmp_path)
    assert len(files) == 1 and len(links) == 1


def test_a_missing_root_fails_alike(tmp_path: Path) -> None:
    assert same_both_ways(tmp_path / "gone")[:2] == ["error", "LocationUnavailable"]


def test_files_replaced_during_the_walk_never_fail_it(tmp_path: Path) -> None:
    """Entries that vanish, or turn into folders or links, between listing and stat."""
    for n in range(40):
        write_file(tmp_path / f"d{n % 4}/still-{n}.txt", "x")
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            path = tmp_path / f"d{i % 4}" / f"churn-{i % 16}"
            write_file(path, "y")
            path.unlink()
            path.mkdir()
            path.rmdir()
            path.symlink_to(tmp_path)
            path.unlink()
            i += 1

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        deadline = time.monotonic() + 3
        scans = 0
        while time.monotonic() < deadline or scans < 20:
            for cls in (TreeScan, PythonScan):
                result = outcome(cls, tmp_path)
                assert result[0] != "error", result
                files = result[0]
                assert {rel for rel, _ in files} >= {f"d{n % 4}/still-{n}.txt" for n in range(40)}
                assert all("still-" in rel or "churn-" in rel for rel, _ in files)
            scans += 1
    finally:
        stop.set()
        churner.join()


_CHILD = """
import json, sys
from pathlib import Path
from tests.test_scan_speedup import PythonScan, TreeScan, outcome
root = Path(sys.argv[1])
print(json.dumps({p: [outcome(c, root / p) for c in (TreeScan, PythonScan)] for p in sys.argv[2:]}))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None, reason="needs root and setpriv to drop DAC override"
)
def test_unreadable_folders_fail_alike(tmp_path: Path) -> None:
    """Run without the power to read anything, as a normal user would be."""
    cases = {
        "locked-root": 0o000,  # the root itself cannot be opened
        "locked-sub": 0o755,  # a subfolder cannot be opened
        "list-only": 0o755,  # a subfolder can be listed, its entries not stat'ed
    }
    for case in cases:
        write_file(tmp_path / case / "a.txt", "a")
    write_file(tmp_path / "locked-sub/inner/b.txt", "b")
    write_file(tmp_path / "list-only/inner/c.txt", "c")
    (tmp_path / "locked-root").chmod(0o000)
    (tmp_path / "locked-sub/inner").chmod(0o000)
    (tmp_path / "list-only/inner").chmod(0o444)
    command = [SETPRIV or "setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    command += [sys.executable, "-c", _CHILD, str(tmp_path), *cases]
    out = tmp_path / "out.json"
    try:
        with out.open("w") as sink:
            subprocess.run(command, stdout=sink, check=True, cwd=ROOT, timeout=120)
    finally:
        for case in ("locked-root", "locked-sub/inner", "list-only/inner"):
            (tmp_path / case).chmod(0o755)
    results = json.loads(out.read_text())
    for case, (fast, python) in results.items():
        assert fast == python, case
        assert fast[:2] == ["error", "LocationUnavailable"], (case, fast)
        assert "Permission denied" in fast[2], (case, fast)


_NAMES = ["a", "b.txt", "ü", "x y", ".filesync", ".filesyncignore", ".filesync-tmp-1", "\udce9"]
_KINDS = ["file", "folder", "file-link", "folder-link", "dangling", "hard-link"]
_entries = st.lists(
    st.tuples(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=3), st.sampled_from(_KINDS)),
    max_size=25,
)


def _build(root: Path, entries: list[tuple[list[str], str]]) -> None:
    files: list[bytes] = []
    for parts, kind in entries:
        path = os.fsencode(root.joinpath(*parts))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if kind == "file":
                with open(path, "xb") as f:
                    f.write(path)
                files.append(path)
            elif kind == "folder":
                os.mkdir(path)
            elif kind == "file-link" and files:
                os.symlink(files[-1], path)
            elif kind == "folder-link":
                os.symlink(root, path)
            elif kind == "dangling":
                os.symlink(os.fsencode(root / "nowhere"), path)
            elif kind == "hard-link" and files:
                os.link(files[0], path)
        except (FileExistsError, FileNotFoundError, NotADirectoryError):
            continue  # a name taken, or a parent that is a file or a link: not this entry


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_entries)
def test_both_loops_list_random_trees_alike(entries: list[tuple[list[str], str]]) -> None:
    with tempfile.TemporaryDirectory(prefix="filesync-scan-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        _build(root, entries)
        same_both_ways(root)
        for name in ("a", "ü", "\udce9"):
            if (root / name).is_dir():
                same_both_ways(root, name)


def indexed(path: Path, rows: dict[str, FileMeta], key: str = "folder:/x") -> StateIndex:
    index = StateIndex(path)
    for rel, meta in rows.items():
        index.put(key, rel, meta)
    index.commit()
    return index


def test_both_index_loads_build_the_same_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = {
        "a.txt": FileMeta(5, 1_700_000_000_123_456_789, 12345),
        "caf\udce9.txt": FileMeta(1, -1_500_000_000_123_456_789, 0),  # stored as a BLOB
        "ünïcode/日本語.txt": FileMeta(6 * 1024**3, 8_000_000_000_987_654_321, 2**63 - 1),
        **{f"d{n % 10}/f{n}.bin": FileMeta(n, n * 1000, n * 7) for n in range(20_000)},
    }
    index = indexed(tmp_path / "index.sqlite", rows)
    indexed(tmp_path / "index.sqlite", {"other": FileMeta(1, 1, 1)}, "folder:/y").close()
    try:
        mirror = index.load("folder:/x")  # read by _rows.c
        with monkeypatch.context() as patch:
            patch.setattr(index_module, "_load_into", None)
            through_sqlite3 = index.load("folder:/x")  # read by the sqlite3 module, _mirror.c
    finally:
        index.close()
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        query = "SELECT path, size, mtime_ns, tag FROM files WHERE location = ?"
        reference = load_rows(db.execute(query, ("folder:/x",)))
    db.close()
    assert list(mirror.items()) == list(reference.items())
    assert list(through_sqlite3.items()) == list(reference.items())
    assert mirror == rows
    for rel, meta in mirror.items():
        assert type(meta) is FileMeta and rel is sys.intern(rel)
    assert not any(map(gc.is_tracked, mirror.values())) or index_module._mirror_into is None


def test_a_load_sees_the_writes_not_yet_committed(tmp_path: Path) -> None:
    rows = {f"f{n}": FileMeta(n, n, n) for n in range(100)}
    index = indexed(tmp_path / "index.sqlite", rows)
    try:
        index.put("folder:/x", "new", FileMeta(1, 2, 3))
        index.remove("folder:/x", "f0")
        waiting = index.load("folder:/x")  # the C reader sees only what is committed
        index.commit()
        committed = index.load("folder:/x")
    finally:
        index.close()
    expected = {**{p: m for p, m in rows.items() if p != "f0"}, "new": FileMeta(1, 2, 3)}
    assert waiting == expected
    assert committed == expected


def test_a_load_the_c_reader_cannot_make_is_read_through_sqlite3(tmp_path: Path) -> None:
    rows = {f"d/f{n}": FileMeta(n, n * 10, n * 100) for n in range(100)}
    index = indexed(tmp_path / "index.sqlite", rows)
    try:
        # The state folder renamed while running: this connection still reads its open file,
        # a second one cannot open it by its name any more.
        (tmp_path / "index.sqlite").rename(tmp_path / "moved.sqlite")
        assert index.load("folder:/x") == rows
    finally:
        index.close()


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_scanning_again_and_again_does_not_grow_memory(tmp_path: Path) -> None:
    """A reference the C code forgets to drop would leak a meta or a name a file a scan."""
    make_tricky_tree(tmp_path / "tree")
    for n in range(2000):
        write_file(tmp_path / f"tree/many/f{n}.txt", "x")
    gone = tmp_path / "gone"

    def scan_many(times: int) -> None:
        for _ in range(times):
            outcome(TreeScan, tmp_path / "tree")
            outcome(TreeScan, gone)
            if scan_module.SPEEDUP:  # the C code's own error path: a closed descriptor
                with pytest.raises(OSError):
                    scan_module._list_folder(-1, "", True, {}, set(), {})  # type: ignore[misc]

    scan_many(20)
    before = _rss_kib()
    scan_many(200)  # 400,000 files listed: a leak of even 16 bytes each would show
    assert _rss_kib() - before < 4 * 1024


def test_loading_the_index_again_and_again_does_not_grow_memory(tmp_path: Path) -> None:
    rows = {f"d{n % 10}/f{n}.bin": FileMeta(n, n * 1000, n * 7) for n in range(4000)}
    rows["caf\udce9.txt"] = FileMeta(1, 2, 3)
    index = indexed(tmp_path / "index.sqlite", rows)
    try:
        for _ in range(20):
            index.load("folder:/x")
        before = _rss_kib()
        for _ in range(100):  # 400,000 rows: a leak of even 16 bytes each would show
            index.load("folder:/x")
        assert _rss_kib() - before < 4 * 1024
    finally:
        index.close()
