"""Draw FileSync's tray icons with Pillow: one picture per state, at every size trays use.

Run ``python resources/make_icons.py`` after changing a design; the PNG and .ico files it
writes are committed, so neither a build nor the app needs Pillow's drawing at run time.
Each picture is drawn once at 256 px and scaled down, which antialiases the small sizes far
better than drawing at 16 px directly.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

SIZES = (16, 22, 24, 32, 48, 64)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
BIG = 256
WHITE = (255, 255, 255, 255)
COLOURS = {
    "synced": (46, 160, 67, 255),
    "syncing": (33, 118, 214, 255),
    "paused": (128, 128, 128, 255),
    "error": (208, 50, 45, 255),
}
OUT = Path(__file__).resolve().parent / "icons"


def _disc(colour: tuple[int, int, int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGBA", (BIG, BIG), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((8, 8, BIG - 8, BIG - 8), fill=colour, outline=(255, 255, 255, 230), width=10)
    return image, draw


def _synced(draw: ImageDraw.ImageDraw) -> None:
    draw.line([(70, 134), (112, 178), (190, 86)], fill=WHITE, width=30, joint="curve")


def _arc_arrow(draw: ImageDraw.ImageDraw, start: float, end: float) -> None:
    box = (62, 62, BIG - 62, BIG - 62)
    draw.arc(box, start, end, fill=WHITE, width=26)
    radius = (BIG - 124) / 2
    angle = math.radians(end)
    cx = cy = BIG / 2
    tip_x, tip_y = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
    tangent = angle + math.pi / 2
    size = 34
    draw.polygon(
        [
            (tip_x + size * math.cos(tangent), tip_y + size * math.sin(tangent)),
            (tip_x + size * math.cos(angle), tip_y + size * math.sin(angle)),
            (tip_x - size * math.cos(angle), tip_y - size * math.sin(angle)),
        ],
        fill=WHITE,
    )


def _syncing(draw: ImageDraw.ImageDraw) -> None:
    _arc_arrow(draw, 200, 340)
    _arc_arrow(draw, 20, 160)


def _paused(draw: ImageDraw.ImageDraw) -> None:
    draw.rounded_rectangle((84, 70, 116, 186), radius=8, fill=WHITE)
    draw.rounded_rectangle((140, 70, 172, 186), radius=8, fill=WHITE)


def _error(draw: ImageDraw.ImageDraw) -> None:
    draw.rounded_rectangle((112, 56, 144, 152), radius=12, fill=WHITE)
    draw.ellipse((110, 170, 146, 206), fill=WHITE)


SYMBOLS = {"synced": _synced, "syncing": _syncing, "paused": _paused, "error": _error}


def draw_state(state: str) -> Image.Image:
    """Return the 256 px picture of one state."""
    image, draw = _disc(COLOURS[state])
    SYMBOLS[state](draw)
    return image


def main() -> None:
    """Write ``icons/filesync-<state>-<size>.png``, ``filesync.png`` and ``filesync.ico``."""
    OUT.mkdir(exist_ok=True)
    for state in COLOURS:
        big = draw_state(state)
        for size in SIZES:
            big.resize((size, size), Image.Resampling.LANCZOS).save(
                OUT / f"filesync-{state}-{size}.png", optimize=True
            )
    logo = draw_state("synced")
    logo.save(OUT / "filesync.png", optimize=True)
    logo.save(OUT / "filesync.ico", sizes=[(s, s) for s in ICO_SIZES])


if __name__ == "__main__":
    main()
