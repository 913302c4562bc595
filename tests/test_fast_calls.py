"""How a folder's group of small files is cut into the C speedup's calls (``fastcopy._calls``).

A call holds at most ``FAST_CALL_BYTES`` and ``FAST_CALL_FILES``: the engine's stop is seen
between two calls (``tests/test_stop_in_groups.py``). Empty files are copied by C too, and
one may come first: a group whose first small file was empty stopped the whole sync with an
IndexError.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.locations.folder import fastcopy, staging
from tests.helpers import tree, write_file
from tests.test_copy_speedup import _folder, _job

pytestmark = pytest.mark.skipif(not fastcopy.SPEEDUP, reason="the C speedup is not built here")


def test_a_group_whose_first_file_is_empty_is_copied(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    files = {"a-empty": b"", **{f"f{i:02d}": f"data {i}".encode() for i in range(20)}}
    files["m-empty"] = b""
    for rel, data in files.items():
        write_file(a / rel, data)
    source, target = _folder(a), _folder(b)
    with source.batch(), target.batch():
        outcomes = target.write_many([_job(source, rel) for rel in sorted(files)])
    assert [o for o in outcomes if isinstance(o, Exception)] == []
    assert tree(b) == files


def test_a_call_holds_at_most_fast_call_files_and_fast_call_bytes(tmp_path: Path) -> None:
    a = tmp_path / "a"
    sizes = [0] * 300 + [fastcopy.FAST_COPY_MAX] * 40
    for n, size in enumerate(sizes):
        write_file(a / f"f{n:04d}", b"x" * size)
    source = _folder(a)
    items = [staging._Item(_job(source, f"f{n:04d}")) for n in range(len(sizes))]
    calls = fastcopy._calls(items)
    assert [item for call in calls for item in call] == items
    assert all(len(call) <= fastcopy.FAST_CALL_FILES for call in calls)
    assert all(sum(i.job.size for i in call) <= fastcopy.FAST_CALL_BYTES for call in calls)
    # 128 and 128 empty files, 44 with 16 of 1 MiB, then 16 and 8 of 1 MiB
    assert [len(call) for call in calls] == [128, 128, 60, 16, 8], [len(c) for c in calls]
