"""Streaming ZIP member data: reading members, deflating new ones, writing whole archives.

Nothing here holds a member in memory: reads decompress chunk by chunk with a bounded output,
new content is deflated chunk by chunk into a staging file, and a rewrite copies byte ranges
with ``copy_file_range`` (in-kernel, no decompression) where the OS allows it.
"""

from __future__ import annotations

import bz2
import contextlib
import io
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from app.errors import CorruptArchive, FileVanished, NotSupported
from app.locations.base import CHUNK_SIZE
from app.locations.zip.format import (
    DEFLATED,
    FLAG_ENCRYPTED,
    STORED,
    Entry,
    central_record,
    end_records,
)

_BZIP2 = 12


class _Decompressor(Protocol):
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _Stored:
    """Pass-through "decompressor" for stored members, bounded like zlib's."""

    unconsumed_tail = b""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if max_length <= 0:
            self.unconsumed_tail = b""
            return data
        self.unconsumed_tail = data[max_length:]
        return data[:max_length]


class MemberReader(io.RawIOBase):
    """Read one member's uncompressed bytes from ``fd`` (which this reader owns and closes).

    The CRC and size are checked at the end: a mismatch means the archive changed or is
    damaged under us, reported as :class:`FileVanished` so the engine simply retries later.
    """

    def __init__(  # noqa: PLR0917 - the six numbers that locate and check a member
        self, fd: int, data_start: int, csize: int, usize: int, crc: int, method: int
    ) -> None:
        super().__init__()
        self._fd = fd
        self._pos = data_start
        self._left = csize
        self._usize = usize
        self._crc_expected = crc
        self._crc = 0
        self._produced = 0
        self._dec: _Decompressor
        if method == STORED:
            self._dec = _Stored()
        elif method == DEFLATED:
            self._dec = zlib.decompressobj(-15)
        elif method == _BZIP2:
            self._dec = bz2.BZ2Decompressor()
        else:  # pragma: no cover - checked by open_member
            raise NotSupported(f"compression method {method} is not supported")
        self._tail = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` with at most its length of decompressed bytes; 0 at the end."""
        want = len(buffer)
        while True:
            if self._at_end():
                self._finish()
                return 0
            if self._tail:
                data = self._tail
            elif getattr(self._dec, "needs_input", True):
                if self._left == 0:
                    raise FileVanished("the member's compressed data ends early (damaged?)")
                data = os.pread(self._fd, min(CHUNK_SIZE, self._left), self._pos)
                if not data:
                    raise FileVanished("the archive was truncated while being read")
                self._pos += len(data)
                self._left -= len(data)
            else:
                data = b""
            try:
                out = self._dec.decompress(data, want)
            except (zlib.error, OSError, EOFError) as exc:
                raise FileVanished(f"the member's data is damaged or changed: {exc}") from exc
            self._tail = getattr(self._dec, "unconsumed_tail", b"")
            if out:
                break
        self._crc = zlib.crc32(out, self._crc)
        self._produced += len(out)
        buffer[: len(out)] = out
        return len(out)

    def _at_end(self) -> bool:
        if self._tail:
            return False
        if isinstance(self._dec, _Stored):
            return self._left == 0
        return bool(getattr(self._dec, "eof", False))

    def _finish(self) -> None:
        if self._produced != self._usize or self._crc != self._crc_expected:
            raise FileVanished("the member changed while being read (size or CRC mismatch)")

    def close(self) -> None:
        """Close the reader's own file descriptor (the archive's stays open)."""
        if not self.closed:
            os.close(self._fd)
        super().close()


def open_member(fd: int, entry: Entry, data_start: int) -> BinaryIO:
    """Return a buffered stream of ``entry``'s content; ``fd`` is owned by the stream."""
    if entry.flags & FLAG_ENCRYPTED:
        os.close(fd)
        raise NotSupported("the member is encrypted; FileSync cannot read it")
    if entry.method not in (STORED, DEFLATED, _BZIP2):
        os.close(fd)
        raise NotSupported(f"compression method {entry.method} is not supported (use deflate)")
    raw = MemberReader(fd, data_start, entry.csize, entry.usize, entry.crc, entry.method)
    return io.BufferedReader(raw, CHUNK_SIZE)


@dataclass(frozen=True, slots=True)
class Blob:
    """Deflated content staged in a temp file: where it is and what it decompresses to."""

    fd: int
    offset: int
    csize: int
    usize: int
    crc: int


def deflate_into(fd: int, offset: int, source: BinaryIO) -> Blob:
    """Deflate ``source`` chunk by chunk into ``fd`` at ``offset``; return where it went."""
    comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    pos, crc, usize = offset, 0, 0
    while chunk := source.read(CHUNK_SIZE):
        crc = zlib.crc32(chunk, crc)
        usize += len(chunk)
        pos += _pwrite_all(fd, comp.compress(chunk), pos)
    pos += _pwrite_all(fd, comp.flush(), pos)
    return Blob(fd, offset, pos - offset, usize, crc)


def _pwrite_all(fd: int, data: bytes, offset: int) -> int:
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
    return len(view)


class ArchiveWriter:
    """Write a new archive to ``fd`` sequentially, copying ranges from other files raw."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pos = 0
        self._buf = bytearray()
        self._central: list[bytes] = []
        self._fast_copy = hasattr(os, "copy_file_range")

    def write(self, data: bytes) -> None:
        """Append small data (headers); buffered until the next copy or the end."""
        self._buf += data
        self.pos += len(data)
        if len(self._buf) >= CHUNK_SIZE:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            _pwrite_all(self.fd, bytes(self._buf), self.pos - len(self._buf))
            self._buf.clear()

    def copy(self, src_fd: int, offset: int, length: int) -> None:
        """Append ``length`` bytes of ``src_fd`` from ``offset`` without decoding them."""
        self._flush()
        end = offset + length
        while offset < end:
            count = min(end - offset, 64 * CHUNK_SIZE)
            done = 0
            if self._fast_copy:
                try:
                    done = os.copy_file_range(src_fd, self.fd, count, offset, self.pos)
                except OSError:
                    self._fast_copy = False
            if not done:
                data = os.pread(src_fd, min(count, CHUNK_SIZE), offset)
                if not data:
                    raise CorruptArchive("the archive is shorter than its directory says")
                done = _pwrite_all(self.fd, data, self.pos)
            offset += done
            self.pos += done

    def add_central(self, entry: Entry) -> None:
        """Record ``entry`` (whose ``offset`` is final) for the central directory."""
        self._central.append(central_record(entry, entry.offset))

    def finish(self, comment: bytes) -> None:
        """Write the central directory and end records; flush everything."""
        cd_offset = self.pos
        for record in self._central:
            self.write(record)
        self.write(end_records(len(self._central), cd_offset, self.pos - cd_offset, comment))
        self._flush()


@dataclass(frozen=True, slots=True)
class Item:
    """One member of an archive being written.

    Without ``header`` the span ``[entry.offset, entry.span_end)`` of ``src_fd`` is copied
    verbatim (local header, data and any data descriptor). With a header (a renamed or new
    member) the header is written, then ``[data_start, entry.span_end)`` of ``src_fd``.
    """

    entry: Entry
    src_fd: int
    data_start: int = 0
    header: bytes = b""


def rewrite(
    out_fd: int, prefix: tuple[int, int] | None, items: Iterable[Item], comment: bytes
) -> tuple[Entry, ...]:
    """Write a complete archive to ``out_fd``; return its entries with their new offsets.

    ``prefix`` is ``(fd, length)`` of bytes to keep before the first member (a self-extractor
    stub). Neighbouring verbatim spans are merged into one copy, so replacing one member of a
    large archive costs a couple of range copies plus the central directory.
    """
    writer = ArchiveWriter(out_fd)
    run: list[int] = []  # [fd, start, end] of the verbatim range not yet copied
    out: list[Entry] = []

    def flush_run() -> None:
        if run:
            writer.copy(run[0], run[1], run[2] - run[1])
            run.clear()

    if prefix is not None and prefix[1] > 0:
        run[:] = [prefix[0], 0, prefix[1]]
    for item in items:
        entry = item.entry
        pending = run[2] - run[1] if run else 0
        if not item.header:
            if not (run and run[0] == item.src_fd and run[2] == entry.offset):
                flush_run()
                pending = 0
                run[:] = [item.src_fd, entry.offset, entry.offset]
            start = writer.pos + pending
            run[2] = entry.span_end
            new = entry._replace(offset=start, span_end=start + entry.span_end - entry.offset)
        else:
            flush_run()
            start = writer.pos
            writer.write(item.header)
            writer.copy(item.src_fd, item.data_start, entry.span_end - item.data_start)
            new = entry._replace(offset=start, span_end=writer.pos)
        out.append(new)
    flush_run()
    for entry in out:
        writer.add_central(entry)
    writer.finish(comment)
    return tuple(out)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable; filesystems that cannot fsync a folder are skipped."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
