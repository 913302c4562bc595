"""The tray pictures, loaded from ``resources/icons`` (also inside a PyInstaller bundle).

The PNG files are drawn by ``resources/make_icons.py`` and committed; loading them here keeps
the app free of drawing code and lets packagers swap the pictures.
"""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import Image

from app.paths import resources_dir
from app.ui.summary import TrayState

#: The sizes the tray icons are drawn at; trays pick 16-24 px, HiDPI trays 32-64 px.
SIZES = (16, 22, 24, 32, 48, 64)


def icon_path(state: TrayState, size: int = 64) -> Path:
    """The PNG file of ``state`` at ``size`` pixels (one of :data:`SIZES`)."""
    if size not in SIZES:
        raise ValueError(f"no {size} px icon; sizes are {SIZES}")
    return resources_dir() / "icons" / f"filesync-{state.value}-{size}.png"


@functools.cache
def load_icon(state: TrayState, size: int = 64) -> Image.Image:
    """The picture of ``state`` as an RGBA image (cached; treat it as read-only)."""
    with Image.open(icon_path(state, size)) as image:
        return image.convert("RGBA")


def app_icon_path() -> Path:
    """The 256 px logo used for windows and the autostart entry."""
    return resources_dir() / "icons" / "filesync.png"
