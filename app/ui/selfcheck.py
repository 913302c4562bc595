"""``filesync --self-check``: load every tray backend that can load here and say which did.

Meant for packaged builds (PyInstaller): it proves the bundle holds the pystray backends,
PyGObject, Xlib and the icons. Exit status 0 when at least one backend loaded and the icons
are present, 1 otherwise.
"""

from __future__ import annotations

import sys

from app.ui.backends import ALL_BACKENDS, TrayBackendError, load_backend
from app.ui.icons import SIZES, icon_path
from app.ui.summary import TrayState


def check_icons() -> list[str]:
    """Names of missing icon files (empty when all are there)."""
    return [
        str(icon_path(state, size))
        for state in TrayState
        for size in SIZES
        if not icon_path(state, size).is_file()
    ]


def main() -> int:
    """Print one line per backend and one for the icons; see the module doc for the status."""
    loaded = 0
    for name in ALL_BACKENDS:
        try:
            backend = load_backend(name)
        except TrayBackendError as exc:
            print(f"tray backend {name:<12} not loaded: {exc}")
            continue
        loaded += 1
        print(
            f"tray backend {name:<12} loaded (menu: {'yes' if backend.has_menu else 'no'}, "
            f"notifications: {'yes' if backend.has_notification else 'no'})"
        )
    missing = check_icons()
    if missing:
        print(f"icons: {len(missing)} missing, e.g. {missing[0]}")
    else:
        print(f"icons: {len(TrayState) * len(SIZES)} present")
    watchdog = _watchdog_observer()
    print(f"file watcher: {watchdog}")
    return 0 if loaded and not missing else 1


def _watchdog_observer() -> str:
    try:
        from watchdog.observers import Observer
    except Exception as exc:
        return f"not loaded: {exc}"
    return f"{Observer.__module__}.{getattr(Observer, '__name__', Observer)}"


if __name__ == "__main__":
    sys.exit(main())
