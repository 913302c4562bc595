"""``filesync --self-check``: load every tray backend that can load here and say which did.

Meant for packaged builds (PyInstaller): it proves the bundle holds the pystray backends,
Xlib, PyGObject when built with it, the icons and the file watcher. Run it on a desktop (or
under ``xvfb-run dbus-run-session``) to see backends really start. Without a display no
backend can start, so then it checks only that nothing is missing from the bundle.

Exit status 1 when an icon is missing, when a backend of this platform is missing from the
bundle (PyGObject's are optional), or when a display is there and no backend loaded.
"""

from __future__ import annotations

import sys

from app.errors import NoDisplay
from app.ui.backends import ALL_BACKENDS, TrayBackendError, load_backend
from app.ui.display import check_display
from app.ui.icons import SIZES, icon_path
from app.ui.summary import TrayState

#: Backends a build for each platform must contain; the GTK ones need the optional PyGObject.
REQUIRED = {"win32": ("win32",), "darwin": ("darwin",)}
LINUX_REQUIRED = ("xorg",)
OPTIONAL_MODULES = ("gi",)


def check_icons() -> list[str]:
    """Names of missing icon files (empty when all are there)."""
    return [
        str(icon_path(state, size))
        for state in TrayState
        for size in SIZES
        if not icon_path(state, size).is_file()
    ]


def _missing_module(exc: BaseException) -> str | None:
    cause = exc.__cause__
    if isinstance(cause, ModuleNotFoundError):
        return cause.name or "?"
    return None


def main() -> int:
    """Print one line per backend, the icons and the watcher; see the module doc for the status."""
    try:
        check_display()
        display = True
    except NoDisplay:
        display = False
    required = REQUIRED.get(sys.platform, LINUX_REQUIRED)
    loaded: list[str] = []
    missing: list[str] = []
    for name in ALL_BACKENDS:
        try:
            backend = load_backend(name)
        except TrayBackendError as exc:
            print(f"tray backend {name:<12} not loaded: {exc}")
            module = _missing_module(exc)
            if name in required and module is not None and module not in OPTIONAL_MODULES:
                missing.append(f"{name} ({module})")
            continue
        loaded.append(name)
        print(
            f"tray backend {name:<12} loaded (menu: {'yes' if backend.has_menu else 'no'}, "
            f"notifications: {'yes' if backend.has_notification else 'no'})"
        )
    icons = check_icons()
    if icons:
        print(f"icons: {len(icons)} missing, e.g. {icons[0]}")
    else:
        print(f"icons: {len(TrayState) * len(SIZES)} present")
    print(f"file watcher: {_watchdog_observer()}")
    print(f"folder scan: {_folder_scan()}")
    print(f"index load: {_index_load()}")
    print(f"folder copies: {_folder_copies()}")
    page = _missing_page_files()
    if page:
        print(f"dashboard page: {len(page)} files missing, e.g. {page[0]}")
    else:
        print("dashboard page: present")
    if missing:
        print(f"FAILED: missing from this build: {', '.join(missing)}")
    elif display and not loaded:
        print("FAILED: a display is there but no tray backend could start")
    elif not display:
        print("no display: backends were imported only; run on a desktop to start them")
    failed = bool(icons or page or missing or (display and not loaded))
    return 1 if failed else 0


def _missing_page_files() -> list[str]:
    from app.web.api import missing_page_files

    return missing_page_files()


def _folder_scan() -> str:
    """Which per-folder loop the folder scan runs (the C one is optional; see ``scan``)."""
    from app.locations.folder.scan import SPEEDUP

    return "C speedup" if SPEEDUP else "pure Python (the C speedup is not in this build)"


def _index_load() -> str:
    """Which loop builds the state index's mirror (the C one is optional; see ``index``)."""
    from app.engine.index import speedup

    return "C speedup" if speedup() else "pure Python (the C speedup is not in this build)"


def _folder_copies() -> str:
    """How a folder's groups of small copies run (the C code is optional; see ``batch``)."""
    from app.locations.folder.fastcopy import SPEEDUP

    return "C speedup" if SPEEDUP else "pure Python (the C speedup is not in this build)"


def _watchdog_observer() -> str:
    try:
        from watchdog.observers import Observer
    except Exception as exc:
        return f"not loaded: {exc}"
    return f"{Observer.__module__}.{getattr(Observer, '__name__', Observer)}"


if __name__ == "__main__":
    sys.exit(main())
