"""The API's JSON shapes for the engine's plain-data snapshots, and advice a user can act on.

Pure functions, so what the page and ``filesync status`` show is tested without a server.
"""

from __future__ import annotations

from typing import Any

from app.engine.status import EngineStatus, LocationState, LocationStatus
from app.locations import registry
from app.locations.spec import LocationSpec
from app.ui.summary import STATE_WORDS, short_name, shorten_names

ADVICE = {
    "unavailable": "FileSync cannot reach it and retries by itself. Check that the disk is "
    "mounted or the server is up and the password is right, then press Sync now.",
    "error": "Some files could not be synced; they are retried at their next change or at "
    "Sync now. A full disk, a missing permission or a name the location cannot hold are the "
    "usual causes.",
    "paused": "Syncing is paused: changes are collected and synced when you resume.",
}


def state_word(loc: LocationStatus, paused: bool) -> str:
    """``synced``, ``syncing``, ``paused``, ``unavailable`` or ``error``."""
    if paused and loc.state in (LocationState.OK, LocationState.SYNCING):
        return "paused"
    return STATE_WORDS[loc.state]


def location_json(loc: LocationStatus, spec: LocationSpec | None, paused: bool) -> dict[str, Any]:
    """One location's row: the spec is shown with its password masked."""
    state = state_word(loc, paused)
    return {
        "key": loc.key,
        "name": loc.name,
        "short": short_name(loc.name),
        "spec": spec.redacted if spec is not None else loc.name,
        "kind": loc.kind,
        "state": state,
        "pending": loc.pending,
        "last_sync": loc.last_sync,
        "last_error": shorten_names(loc.last_error, loc.name),
        "advice": ADVICE.get(state, ""),
        "files": loc.file_count,
    }


def status_json(status: EngineStatus, specs: tuple[LocationSpec, ...]) -> dict[str, Any]:
    """``GET /api/status``."""
    by_key = {s.key: s for s in specs}
    return {
        "paused": status.paused,
        "syncing": status.syncing,
        "pending": status.pending,
        "last_sync": status.last_sync,
        "error": status.error,
        "locations": [
            location_json(loc, by_key.get(loc.key), status.paused) for loc in status.locations
        ],
    }


def kinds_json() -> dict[str, Any]:
    """``GET /api/kinds``: the kinds the add form offers, from the registry, in its order.

    ``fields`` are each kind's declared fields (see :mod:`app.locations.form.fields`): the page
    draws them as the desktop dialog does, and posts their values by name.
    """
    return {
        "kinds": [
            {
                "name": kind.name,
                "title": kind.title,
                "style": kind.form.style.value,
                "suffix": kind.form.suffix,
                "default_port": kind.default_port,
                "fields": [
                    {
                        "name": f.name,
                        "label": f.label,
                        "widget": f.widget.value,
                        "default": f.default,
                        "required": f.required,
                        "help": f.help,
                        "choices": list(f.choices),
                        "suffix": f.suffix,
                    }
                    for f in kind.form.fields
                ],
            }
            for kind in registry.KINDS
        ]
    }
