"""The engine's tunables, apart from the engine so front ends and tests can build them."""

from __future__ import annotations

from typing import NamedTuple

from app.engine.workers import DEFAULT_DEADLINE


class EngineSettings(NamedTuple):
    """Tunables; the defaults are what a user gets."""

    debounce: float = 0.05
    #: Seconds between polls for every location (tests); None: each location's own.
    poll_interval: float | None = None
    rescan_interval: float = 900.0
    ignore: tuple[str, ...] = ()
    allow_mass_delete: bool = False
    #: Longest wait for one location's answer while watching; a slower one is parked.
    io_deadline: float = DEFAULT_DEADLINE
    #: Seconds a file may grow without pause before it is copied as it is (a busy log).
    settle_bound: float = 60.0
