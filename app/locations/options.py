"""Settings that apply to every location of a run, whatever its kind."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LocationOptions:
    """Settings that apply to every location of a run (from the command line or config)."""

    trash_days: float = 30.0
    trash_max_mb: float = 1024.0
    connect_timeout: float = 15.0
