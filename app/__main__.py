"""``python -m app`` runs the same entry point as the ``filesync`` command.

The cycle collector gets FileSync's policy (:mod:`app.engine.gcpolicy`) before the program's
modules load: with Python's default, loading them ran about 24 young collections, 2-3 ms of
a 0.1 s restart (``build_engine`` sets the same policy again, for other entry points).
"""

from __future__ import annotations

from app.engine.gcpolicy import collect_less_often

if __name__ == "__main__":
    collect_less_often()
    from app.cli import console

    console()
