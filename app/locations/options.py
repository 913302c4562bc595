"""Settings that apply to every location of a run, whatever its kind."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple


class LocationOptions(NamedTuple):
    """Settings that apply to every location of a run (from the command line or config)."""

    trash_days: float = 30.0
    trash_max_mb: float = 1024.0
    connect_timeout: float = 15.0
    #: Look without touching (``run --dry-run``): opening, adopting and scanning create,
    #: mark and clean up nothing. Only kinds with ``Location.reads_only`` honour it.
    read_only: bool = False
    #: Seconds between polls chosen by the user; None: each kind's own default.
    poll_interval: float | None = None
    #: A folder in the state folder where a location may keep what it learned of its files
    #: (an S3 object's time), so that a restart need not ask the server again. Only a cache:
    #: a kind that cannot read it asks as if it were not there. None: keep nothing.
    cache_dir: Path | None = None
