"""Every option of every command explains itself in ``--help`` (issue 14)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from app.cli import build_parser


def _parsers(
    parser: argparse.ArgumentParser, name: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_option_of_every_command_has_one_line_of_help() -> None:
    missing = []
    for name, parser in _parsers(build_parser(), "filesync"):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for command in action._choices_actions:  # each command's line in the list
                    if not command.help:
                        missing.append(f"{name} {command.dest}")
                continue
            text = action.help
            what = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not text or text == argparse.SUPPRESS or "\n" in text:
                missing.append(what)
    assert missing == []


def test_run_help_names_every_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for option in ("--dry-run", "--once", "--file", "--state", "--web", "--trash-days"):
        assert option in out


def test_help_is_as_wide_as_with_argparses_own_formatter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line asks the width itself (without shutil, see ``terminal_columns``): the
    help reads exactly as argparse's own formatter, which asks shutil, lays it out."""
    import shutil

    from app.cli import terminal_columns

    for columns in ("52", "131", "0", "wide", None):
        if columns is None:
            monkeypatch.delenv("COLUMNS", raising=False)
        else:
            monkeypatch.setenv("COLUMNS", columns)
        assert terminal_columns() == shutil.get_terminal_size().columns
        for name, parser in _parsers(build_parser(), "filesync"):
            ours = parser.format_help()
            parser.formatter_class = argparse.HelpFormatter
            assert ours == parser.format_help(), (name, columns)
