"""Type stub of the optional C speedup built from ``_rows.c`` (see :mod:`.index`)."""

from app.locations.base import FileMeta

def same_library(sqlite3_module_file: str) -> bool: ...
def load_into(
    database: bytes, location: str | bytes, mirror: dict[str, FileMeta], meta_type: type[FileMeta]
) -> None: ...
