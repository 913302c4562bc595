"""``filesync run --dry-run``: print what the initial sync would do, and change nothing.

What rsync ``-n``, rclone ``--dry-run`` and Unison users check before trusting a tool with
their files: every copy, delete and conflict copy, then the totals. The locations are opened
read-only (no ``.filesync`` mark, no new archive, no cleanup), the state index is only read,
and neither the state folder nor a log file is created. :mod:`app.cli` only registers this.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from app import paths
from app.engine.index import INDEX_FILE
from app.engine.settings import EngineSettings
from app.errors import ConfigError
from app.locations import LocationOptions, open_location
from app.locations.overlap import check_overlaps
from app.locations.registry import opens_at_start
from app.locations.spec import LocationSpec
from app.logsetup import setup_logging
from app.messages import shown

if TYPE_CHECKING:
    from app.engine.preview import Preview, Step


def add_run_options(run: argparse.ArgumentParser) -> None:
    """``--dry-run`` on ``filesync run``."""
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print what the initial sync would copy, delete and keep as conflict copies, "
        "then exit; changes nothing (not even the state index)",
    )


def main(args: argparse.Namespace, specs: Sequence[LocationSpec], out: TextIO = sys.stdout) -> int:
    """Plan the initial sync of ``specs`` and print it; 0 unless a location cannot be read."""
    state_dir = args.state or paths.state_dir()
    options = LocationOptions(
        trash_days=args.trash_days, trash_max_mb=args.trash_max_mb, read_only=True
    )
    locations = [open_location(s, options) for s in specs]
    for location in locations:
        if not location.reads_only:
            raise ConfigError(
                "--dry-run cannot look at this kind of location without changing it",
                location=location.name,
            )
    check_overlaps(locations, state_dir, args.log_file)
    setup_logging(args.verbose)  # no --log-file: a dry run creates no file
    for location in locations:
        if opens_at_start(location.kind):
            location.open()  # a mistyped folder fails now, as in a real run
    settings = EngineSettings(ignore=tuple(args.ignore), allow_mass_delete=args.allow_mass_delete)
    from app.engine.preview import preview_sync  # only a dry run loads it

    preview = preview_sync(locations, state_dir / INDEX_FILE, settings)
    print_preview(preview, out)
    return 1 if preview.unavailable else 0


def print_preview(preview: Preview, out: TextIO) -> None:
    """One line per step, the problems, then the totals."""
    from app.engine.preview import CONFLICT, COPY, DELETE

    print("dry run: nothing below is done, and nothing was changed", file=out)
    for step in preview.steps:
        print(describe(step), file=out)
    for line in preview.unavailable:
        print(f"unavailable (would be retried, not synced): {line}", file=out)
    for line in preview.problems:
        print(f"held: {line}", file=out)
    copies, deletes, conflicts = (preview.count(a) for a in (COPY, DELETE, CONFLICT))
    print(
        f"total: {copies} cop{'y' if copies == 1 else 'ies'} ({size(preview.bytes_copied)}), "
        f"{deletes} delete{'' if deletes == 1 else 's'}, "
        f"{conflicts} conflict cop{'y' if conflicts == 1 else 'ies'}",
        file=out,
    )


def describe(step: Step) -> str:
    """``copy  a.txt  folder:/x -> folder:/y, zip:/z.zip  (12 B)`` and the like."""
    from app.engine.preview import COPY, DELETE

    path = shown(step.path)
    targets = ", ".join(shown(t) for t in step.targets)
    if step.action == COPY:
        return f"copy      {path}  {shown(step.source)} -> {targets}  ({size(step.size)})"
    if step.action == DELETE:
        return f"delete    {path}  in {targets}"
    return f"conflict  {path}  {shown(step.source)}'s version kept as {shown(step.detail)}"


def size(n: int) -> str:
    """Bytes in the units ``ls -h`` users read: B, kB, MB, GB (powers of 1000)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover - the loop always returns
