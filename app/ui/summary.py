"""Turn an :class:`EngineStatus` into what a person reads: icon state, tooltip, row texts.

Pure functions of plain data, shared by the tray and the status window so both always say
the same thing, and tested without a display.
"""

from __future__ import annotations

import enum
import re
import time

from app.engine.status import Activity, EngineStatus, LocationState, LocationStatus
from app.locations.registry import local_prefixes, short_label
from app.messages import shown


class TrayState(enum.Enum):
    """The four pictures of the tray icon (file names in ``resources/icons``)."""

    SYNCED = "synced"
    SYNCING = "syncing"
    PAUSED = "paused"
    ERROR = "error"


STATE_WORDS = {
    LocationState.OK: "synced",
    LocationState.SYNCING: "syncing",
    LocationState.UNAVAILABLE: "unavailable",
    LocationState.ERROR: "error",
}


_LOCAL_NAME = re.compile(
    r"\b(" + "|".join(re.escape(p) for p in local_prefixes()) + r"):(/[^\s,;()]*)"
)


def short_name(name: str) -> str:
    """What a person calls a location (see :func:`app.locations.registry.short_label`)."""
    return short_label(name)


def shorten_names(text: str, own_name: str = "") -> str:
    """``text`` with local location names shortened and a leading ``own_name: `` removed."""
    if own_name and text.startswith(own_name + ": "):
        text = text[len(own_name) + 2 :]
    return _LOCAL_NAME.sub(lambda m: short_name(m.group(0)), text)


def clock(timestamp: float | None) -> str:
    """``12:04`` for today, ``3 Nov 12:04`` before, ``never`` for None (local time)."""
    if timestamp is None:
        return "never"
    moment = time.localtime(timestamp)
    if time.strftime("%Y%m%d", moment) == time.strftime("%Y%m%d"):
        return time.strftime("%H:%M", moment)
    return f"{moment.tm_mday} {time.strftime('%b %H:%M', moment)}"


def _troubled(status: EngineStatus) -> list[LocationStatus]:
    bad = (LocationState.UNAVAILABLE, LocationState.ERROR)
    return [loc for loc in status.locations if loc.state in bad]


def tray_state(status: EngineStatus) -> TrayState:
    """Paused wins (the user chose it), then errors, then syncing; otherwise synced."""
    if status.paused:
        return TrayState.PAUSED
    if status.error or _troubled(status):
        return TrayState.ERROR
    if not status.locations:
        return TrayState.SYNCED
    syncing = any(loc.state is LocationState.SYNCING for loc in status.locations)
    if status.syncing or status.pending or syncing:
        return TrayState.SYNCING
    return TrayState.SYNCED


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def tooltip(status: EngineStatus) -> str:
    """The tooltip and the menu's status line, e.g. ``Synced · 3 locations · 12:04``."""
    count = len(status.locations)
    if count == 0:
        return "No locations yet — add one"
    if status.paused:
        return f"Paused · {_plural(count, 'location')}"
    if status.error:
        return shorten_names(status.error)
    troubled = _troubled(status)
    if troubled:
        first = troubled[0]
        name = short_name(first.name)
        if first.state is LocationState.UNAVAILABLE:
            text = f"{name} unavailable — retrying"
        else:
            text = f"{name}: {shorten_names(first.last_error, first.name) or 'error'}"
        if len(troubled) > 1:
            text += f" (+{len(troubled) - 1} more)"
        return text
    if tray_state(status) is TrayState.SYNCING:
        pending = status.pending or sum(loc.pending for loc in status.locations)
        return f"Syncing {_plural(pending, 'file')}" if pending else "Syncing"
    return f"Synced · {_plural(count, 'location')} · {clock(status.last_sync)}"


def location_line(loc: LocationStatus) -> str:
    """A location's menu label: its name and state in words."""
    return f"{short_name(loc.name)} — {STATE_WORDS[loc.state]}"


def notification(activity: Activity) -> tuple[str, str] | None:
    """Title and text of the desktop notification for a conflict or error, else None."""
    if activity.action == "conflict":
        detail = f" ({activity.detail})" if activity.detail else ""
        where = short_name(activity.location)
        return "FileSync: conflict", f"{shown(activity.path)} in {where}{shorten_names(detail)}"
    if activity.action in ("error", "held"):
        title = "FileSync: error" if activity.action == "error" else "FileSync: deletes held"
        name = short_name(activity.location)
        where = f"{name}: {shown(activity.path)}" if activity.path else name
        detail = shorten_names(activity.detail, activity.location)
        return title, f"{where} — {detail}" if detail else where
    return None


def activity_line(activity: Activity) -> str:
    """A row of the status window's recent-activity list."""
    where = short_name(activity.location)
    path = shown(activity.path)
    text = f"{clock(activity.time)}  {activity.action:<8} {path}  ({where})".replace("  ()", "")
    detail = shorten_names(activity.detail, activity.location)
    return f"{text} — {detail}" if detail else text
