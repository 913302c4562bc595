"""Type stub of the optional C speedup built from ``_copy.c`` (see :mod:`.batch`)."""

COPY_MAX: int

def stage(
    items: list[tuple[int, str, int, str, int]],
    durable: bool,
    beneath: bool = ...,
    threads: int = ...,
) -> list[int]: ...
def land_new(items: list[tuple[int, str, str]]) -> list[tuple[int, int, int, int] | int]: ...
