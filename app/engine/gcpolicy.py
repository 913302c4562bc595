"""How often Python's cycle collector runs in a process that syncs: far less often than its
default.

An engine holds one small tuple a file in every listing and index mirror, and a scan or an
index load makes hundreds of thousands of them at once. With the default thresholds (a
collection every 700 new containers, a full one whenever the survivors grew by a quarter) a
restart of 100,000 files ran about 550 collections, four of them full passes over every
object, 0.2-0.5 s in all, and the full passes grow with the tree (what made 300,000 files cost
more a file than 100,000). FileSync's data holds no reference cycles worth collecting
promptly, so collecting every 100,000 new containers costs a few megabytes of garbage at most.
"""

from __future__ import annotations

import gc

#: New container objects between two young collections (Python's default is 700).
YOUNG_EVERY = 100_000


def collect_less_often() -> None:
    """Set the process's collector thresholds for syncing (call once, from an entry point)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_EVERY, middle, old)
