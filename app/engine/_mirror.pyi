"""Type stub of the optional C speedup built from ``_mirror.c`` (see :mod:`.index`)."""

from app.locations.base import FileMeta

def mirror_into(
    mirror: dict[str, FileMeta],
    rows: list[tuple[str | bytes, int, int, int]],
    meta_type: type[FileMeta],
) -> None: ...
