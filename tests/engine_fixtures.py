"""Building engines over real temporary folders for the engine and CLI tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.engine.engine import Engine
from app.engine.index import StateIndex
from app.engine.settings import EngineSettings
from app.engine.status import Activity
from app.locations import LocationOptions, open_location
from app.locations.base import Location


@dataclass
class Rig:
    """Folders, a state file and (while running) an engine over them.

    ``state_file`` defaults to ``tmp/state/index.sqlite``; give each rig its own to run two
    machines (two engines, own folders and state) side by side. ``options`` builds every
    location.
    """

    tmp: Path
    roots: list[Path]
    extra_specs: list[str] = field(default_factory=list)
    settings: EngineSettings = field(
        default_factory=lambda: EngineSettings(debounce=0.03, poll_interval=0.2)
    )
    engine: Engine | None = None
    index: StateIndex | None = None
    state_file: Path | None = None
    options: LocationOptions = field(default_factory=LocationOptions)

    @property
    def state(self) -> Path:
        return self.state_file or self.tmp / "state" / "index.sqlite"

    def locations(self) -> list[Location]:
        specs = [f"folder:{r}" for r in self.roots] + self.extra_specs
        return [open_location(s, self.options) for s in specs]

    def start(self, watch: bool = True, **settings: object) -> Engine:
        assert self.engine is None, "engine already running"
        if settings:
            self.settings = EngineSettings(**{**self.settings._asdict(), **settings})
        self.index = StateIndex(self.state)
        self.engine = Engine(self.locations(), self.index, self.settings)
        self.engine.start(watch=watch)
        return self.engine

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        if self.index is not None:
            self.index.close()
            self.index = None

    def once(self, **settings: object) -> bool:
        engine = self.start(watch=False, **settings)
        converged = engine.converged()
        self.stop()
        return converged


def run_once(
    locations: list[Location],
    state: Path,
    settings: EngineSettings | None = None,
    listener: Callable[[Activity], None] | None = None,
) -> None:
    """An initial sync of ``locations`` as ``--once`` runs it, which must converge."""
    index = StateIndex(state)
    engine = Engine(locations, index, settings or EngineSettings())
    if listener is not None:
        engine.add_listener(listener)
    try:
        engine.start(watch=False)
        assert engine.converged()
    finally:
        engine.stop()
        index.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """Three empty folders a, b, c; call ``rig.start()`` to run an engine over them."""
    roots = [tmp_path / name for name in ("a", "b", "c")]
    for root in roots:
        root.mkdir()
    r = Rig(tmp_path, roots)
    yield r
    r.stop()
