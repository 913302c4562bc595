"""What a folder listing costs in memory: one meta a file a location, as small as it can be.

A first run over two identical trees holds both listings at once (and then the index mirrors
that share their metas), so every byte a meta costs counts 200,000 times for 100,000 files.
The C scan (``_scan.c``) builds a meta as a tuple of exactly three items (as the index load,
``_mirror.c``, does), shares the integers
of another location's scan running beside it where size and mtime are the same (a tree
copied with its times), and shares small sizes it built a moment ago. The values never
change: both loops still list the same metas (``tests/test_scan_speedup.py``).
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tracemalloc
from pathlib import Path

import pytest

from app.locations.base import FileMeta, Listing
from app.locations.folder import scan as scan_module
from app.locations.folder.nofollow import LinkFreeTree
from app.locations.folder.scan import TreeScan
from tests.helpers import write_file

pytestmark = pytest.mark.skipif(
    not scan_module.SPEEDUP, reason="the pure-Python scan (FILESYNC_PURE_PYTHON=1) shares nothing"
)

FILES = 3000


def name(n: int) -> str:
    return f"d{n % 30:02d}/f{n:05d}.bin"


#: Interned now, so that measuring a scan does not count the interpreter's table growing.
NAMES = [sys.intern(name(n)) for n in range(FILES)]


def make_copies(tmp_path: Path) -> tuple[Path, Path]:
    """A tree of ``FILES`` files of 16-511 bytes, and a copy of it with the same mtimes."""
    a, b = tmp_path / "a", tmp_path / "b"
    for n in range(FILES):
        write_file(a / name(n), b"x" * (16 + n % 496))
    shutil.copytree(a, b)  # copy2: the same mtimes to the nanosecond, other inodes
    return a, b


def scan(root: Path) -> Listing:
    return TreeScan(LinkFreeTree(root, f"folder:{root}"), "", clean_temps=False).run().files


def scan_beside(root: Path, running: Listing) -> Listing:
    """Scan ``root`` while another location's scan, which listed ``running``, still runs."""
    with scan_module._RUNNING.joined(running):
        return scan(root)


def test_a_copy_scanned_beside_its_original_shares_each_size_and_mtime(tmp_path: Path) -> None:
    a, b = make_copies(tmp_path)
    os.link(a / "d00/f00000.bin", b / "both.bin")  # one file in both locations
    os.link(a / "d00/f00000.bin", a / "both.bin")
    write_file(b / "d01/f00001.bin", "edited in b")  # another size and mtime there
    first = scan(a)
    second = scan_beside(b, first)
    assert second.keys() == first.keys()
    for rel, meta in second.items():
        assert type(meta) is FileMeta
        assert meta == scan_module.file_meta(os.lstat(b / rel))
        if rel in ("both.bin", "d01/f00001.bin"):
            continue
        assert meta.tag != first[rel].tag  # its own inode
        assert meta.size is first[rel].size and meta.mtime_ns is first[rel].mtime_ns, rel
    assert second["both.bin"] is first["both.bin"]  # the same file: the same meta
    assert second["d01/f00001.bin"].mtime_ns is not first["d01/f00001.bin"].mtime_ns


def test_no_listing_is_held_for_sharing_once_no_scan_runs(tmp_path: Path) -> None:
    a, b = make_copies(tmp_path)
    first = scan(a)
    assert scan_module._RUNNING.peers({}) == ()
    with scan_module._RUNNING.joined(first):
        second = scan(b)
        assert scan_module._RUNNING.peers({}) == (first, second)  # ended, but first runs
    assert scan_module._RUNNING.peers({}) == ()
    assert second == {rel: scan_module.file_meta(os.lstat(b / rel)) for rel in second}


def _traced_bytes(build: object) -> tuple[int, object]:
    """Bytes ``build()`` allocates and keeps, by Python's allocator's own count."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[0] - before, kept
    finally:
        tracemalloc.stop()


def test_two_copies_listed_side_by_side_cost_at_most_150_bytes_a_file_each(
    tmp_path: Path,
) -> None:
    """Dictionaries aside: 64 bytes of tuple, the tag's 36 and half of a mtime's 36.

    Before, a meta took 72 bytes of tuple (PyType_GenericAlloc's spare item), a tag, a
    mtime and a size of its own in each location: 172 bytes a file a location.
    """
    a, b = make_copies(tmp_path)

    def both() -> tuple[Listing, Listing]:
        first = scan(a)
        return first, scan_beside(b, first)

    spent, kept = _traced_bytes(both)
    first, second = kept  # type: ignore[misc]
    per_meta = (spent - sys.getsizeof(first) - sys.getsizeof(second)) / (2 * FILES)
    assert per_meta <= 150, f"{per_meta:.0f} bytes a meta"
