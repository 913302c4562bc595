"""``python -m app`` runs the same entry point as the ``filesync`` command."""

from __future__ import annotations

from app.cli import console

if __name__ == "__main__":
    console()
