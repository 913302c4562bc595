"""The allowed range of every number a user can set, checked the same way everywhere.

The command line, the settings file and the add-location dialog all call :func:`check_number`,
so a value refused in one place is refused in all of them, with the same words. Non-finite
values (``nan``, ``inf``) and values far beyond any sensible setting are refused up front:
passed on, they overflow a thread's timeout or a timestamp, that thread dies, and the process
lives on syncing nothing.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from app.errors import InvalidNumber

_WHOLE = re.compile(r"[0-9]+")


class NumberRule(NamedTuple):
    """A range: above ``minimum`` (or from it, if ``inclusive``) up to ``maximum``."""

    unit: str
    maximum: float
    minimum: float = 0.0
    inclusive: bool = False
    whole: bool = False

    def describe(self) -> str:
        """The rule in words, e.g. ``a number of seconds above 0 and at most 60``."""
        what = "a whole number" if self.whole else "a number"
        if self.unit:
            what += f" of {self.unit}"
        low, high = _show(self.minimum), _show(self.maximum)
        if self.inclusive:
            return f"{what} between {low} and {high}"
        return f"{what} above {low} and at most {high}"


DEBOUNCE = NumberRule("seconds", 60.0)
POLL_INTERVAL = NumberRule("seconds", 86_400.0)
RESCAN_INTERVAL = NumberRule("seconds", 7 * 86_400.0)
TRASH_DAYS = NumberRule("days", 36_500.0)
TRASH_MAX_MB = NumberRule("MB", 100_000_000.0)
PORT = NumberRule("", 65_535, minimum=1, inclusive=True, whole=True)


def check_number(value: object, rule: NumberRule) -> float:
    """Return ``value`` (text from a command line or a form, or a TOML number) as a float.

    Raise :class:`InvalidNumber` saying what was given and what ``rule`` allows; the caller
    puts the name of the setting in front.
    """
    number = _parse(value, rule)
    if number is None or not _in_range(number, rule):
        raise InvalidNumber(f"{_given(value)} is not {rule.describe()}")
    return number


def _in_range(number: float, rule: NumberRule) -> bool:
    if not math.isfinite(number) or number > rule.maximum:
        return False
    return number >= rule.minimum if rule.inclusive else number > rule.minimum


def _parse(value: object, rule: NumberRule) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if rule.whole and not isinstance(value, int):
            return None
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if rule.whole:
        return float(int(text)) if _WHOLE.fullmatch(text) and len(text) < 20 else None
    try:
        return float(text)
    except ValueError:
        return None


def _given(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    return str(value).lower() if isinstance(value, bool | float) else repr(value)


def _show(number: float) -> str:
    return f"{number:g}" if number < 1e6 else f"{int(number):d}"
