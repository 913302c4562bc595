"""Type stub of the optional C speedup built from ``_scan.c`` (see :mod:`.scan`)."""

import os

from app.locations.base import FileMeta

def configure(
    meta_type: type[FileMeta], temp_prefix: bytes, root_names: tuple[bytes, ...]
) -> None: ...
def file_system_type(path: str | bytes | os.PathLike[str]) -> int | None: ...
def list_folder(
    fd: int,
    base: str,
    at_root: bool,
    files: dict[str, FileMeta],
    links: set[str],
    hard_links: dict[str, tuple[int, int]],
    peers: tuple[dict[str, FileMeta], ...] = (),
) -> tuple[list[str], list[str]]: ...
