"""Helpers shared by the ZIP tests (no tests here): locations, Info-ZIP, raw member bytes."""

from __future__ import annotations

import io
import struct
import subprocess
import zipfile
from pathlib import Path

from app.locations import LocationOptions, open_location
from app.locations.zip.location import ZipLocation

T0 = 1_700_000_000_000_000_000  # 2023-11-14 22:13:20 UTC, a whole second, in ns


def zip_location(archive: Path) -> ZipLocation:
    """An opened ZIP location on ``archive`` (the caller closes it)."""
    loc = open_location(f"zip:{archive}", LocationOptions())
    assert isinstance(loc, ZipLocation)
    loc.open()
    return loc


def zip_tree(archive: Path) -> dict[str, bytes]:
    """Every user file in ``archive`` as any ZIP reader sees it (no folders, no ``.filesync``);
    an archive not made yet holds nothing."""
    if not archive.exists():
        return {}
    with zipfile.ZipFile(archive) as zf:
        return {
            i.filename: zf.read(i)
            for i in zf.infolist()
            if not i.is_dir() and not i.filename.split("/")[0].startswith(".filesync")
        }


def run_zip(*args: str | Path, cwd: Path) -> None:
    """Run the Info-ZIP ``zip`` tool quietly; fail loudly if it fails."""
    subprocess.run(["zip", "-q", *map(str, args)], cwd=cwd, check=True, timeout=120)


def unzip_test(archive: Path) -> None:
    """Fail unless Info-ZIP ``unzip -t`` and Python's zipfile both find every CRC correct."""
    result = subprocess.run(
        ["unzip", "-tq", str(archive)], check=False, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None


def put(loc: ZipLocation, path: str, data: bytes, mtime_ns: int = T0) -> None:
    """Write one file through the location (its own batch)."""
    loc.write(path, io.BytesIO(data), mtime_ns)


def read(loc: ZipLocation, path: str) -> bytes:
    """Read one file through the location."""
    with loc.open_read(path) as f:
        return f.read()


def raw_members(archive: Path) -> dict[str, bytes]:
    """Each member's compressed bytes exactly as stored (last duplicate wins)."""
    out: dict[str, bytes] = {}
    data = archive.read_bytes()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            off = info.header_offset
            name_len, extra_len = struct.unpack_from("<HH", data, off + 26)
            start = off + 30 + name_len + extra_len
            out[info.filename] = data[start : start + info.compress_size]
    return out


class NonSeekable(io.RawIOBase):
    """A write-only stream zipfile cannot seek: it then writes data descriptors (flag bit 3)."""

    def __init__(self, target: io.BufferedWriter) -> None:
        super().__init__()
        self.target = target

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        return self.target.write(b)

    def flush(self) -> None:
        self.target.flush()
