"""A separate process that writes one file slowly, like a download or a video export.

Run as ``python -m tests.slow_writer PATH MODE CHUNKS CHUNK_BYTES PAUSE [STOP_FILE]``. MODE
``open`` keeps the file open for the whole run (closing it at the end), ``reopen`` opens,
appends and closes it for every chunk, ``endless`` keeps it open and appends until STOP_FILE
exists (a log that never closes). Every chunk has distinct bytes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def chunk(n: int, size: int) -> bytes:
    """The ``n``-th chunk: distinct bytes, so any partial copy differs from the final file."""
    return (f"chunk {n:06d} ".encode() * (size // 13 + 1))[:size]


def main(argv: list[str]) -> int:
    path, mode, chunks, size, pause = (
        Path(argv[0]),
        argv[1],
        int(argv[2]),
        int(argv[3]),
        float(argv[4]),
    )
    stop = Path(argv[5]) if len(argv) > 5 else None
    if mode == "reopen":
        for n in range(chunks):
            with open(path, "ab") as f:
                f.write(chunk(n, size))
            time.sleep(pause)
        return 0
    with open(path, "wb") as f:
        n = 0
        while n < chunks or (mode == "endless" and stop is not None and not stop.exists()):
            f.write(chunk(n, size))
            f.flush()
            os.fsync(f.fileno())
            n += 1
            time.sleep(pause)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
