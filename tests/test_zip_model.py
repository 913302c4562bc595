"""Random batches of writes, deletes and renames against a plain dict: the archive must agree."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import FileVanished
from tests.test_zip_helpers import T0, read, zip_location

NAMES = ["a.txt", "b.txt", "d/c.txt", "d/e/f.txt", "ü/ñ.txt", "d"]
_op = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), st.binary(max_size=3000)),
    st.tuples(st.just("delete"), st.sampled_from(NAMES), st.just(b"")),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
)
_batches = st.lists(st.lists(_op, min_size=1, max_size=8), min_size=1, max_size=6)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(batches=_batches)
def test_archive_matches_a_dict_after_random_batches(
    batches: list[list[tuple[str, str, object]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "model.zip"
        loc = zip_location(archive)
        model: dict[str, bytes] = {}
        try:
            for n, batch in enumerate(batches):
                with loc.batch():
                    for kind, path, arg in batch:
                        if kind == "write":
                            assert isinstance(arg, bytes)
                            loc.write(path, io.BytesIO(arg), T0 + n * 2_000_000_000)
                            model[path] = arg
                        elif kind == "delete":
                            loc.delete(path)
                            model.pop(path, None)
                        elif path in model:
                            assert isinstance(arg, str)
                            loc.rename(path, arg)
                            model[arg] = model.pop(path)
                        else:
                            try:
                                loc.rename(path, str(arg))
                            except FileVanished:
                                pass
                            else:
                                raise AssertionError("rename of a missing file succeeded")
                    assert {p: m.size for p, m in loc.scan().items()} == {
                        p: len(d) for p, d in model.items()
                    }
                assert {p: read(loc, p) for p in loc.scan()} == model
                with zipfile.ZipFile(archive) as zf:
                    assert zf.testzip() is None
                    assert {i.filename: zf.read(i) for i in zf.infolist()} == model
        finally:
            loc.close()
