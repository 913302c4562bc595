"""Building an engine: the one place that turns specs and a state folder into an Engine.

The command line and the desktop app both build their engine here, so the state index's file
name, the order of the steps and who closes what are decided once: the engine returned owns
its :class:`~app.engine.index.StateIndex`, and :meth:`Engine.close` closes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from app.engine.engine import Engine
from app.engine.gcpolicy import collect_less_often
from app.engine.index import INDEX_FILE, StateIndex
from app.engine.settings import EngineSettings
from app.locations.options import LocationOptions
from app.locations.registry import open_with, opens_at_start
from app.locations.spec import LocationSpec

#: The folder in the state folder where locations keep what they learned of their files.
CACHE_DIR = "cache"


def build_engine(
    specs: Sequence[LocationSpec],
    state_dir: Path,
    settings: EngineSettings,
    options: LocationOptions | None = None,
    *,
    open_local_now: bool = False,
) -> Engine:
    """An engine syncing ``specs``, with its state index in ``state_dir`` (created if needed).

    ``open_local_now`` opens the kinds that open at start (a local folder) before the engine
    exists, so a mistyped path fails at once instead of being retried as unavailable; a
    remote location is always left to the engine, which retries it. If anything fails, the
    index is closed again before the error propagates. It also makes the process's cycle
    collector run less often (:mod:`app.engine.gcpolicy`).
    """
    collect_less_often()
    options = options or LocationOptions()
    if options.cache_dir is None:
        options = options._replace(cache_dir=state_dir / CACHE_DIR)
    state_dir.mkdir(parents=True, exist_ok=True)
    index = StateIndex(state_dir / INDEX_FILE)
    try:
        locations = [open_with(spec, options) for spec in specs]
        if open_local_now:
            for location in locations:
                if opens_at_start(location.kind):
                    location.open()
        return Engine(locations, index, settings)
    except BaseException:
        index.close()
        raise
