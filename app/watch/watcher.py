"""The small interface every watcher implements."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Watcher(ABC):
    """Runs in its own thread(s) and pushes changes into the engine's queue until stopped."""

    @abstractmethod
    def start(self) -> None:
        """Begin watching. Called BEFORE the initial scan, so nothing in between is missed."""

    @abstractmethod
    def stop(self) -> None:
        """Stop and join every thread this watcher started. Safe to call twice."""
