"""The initial sync's shortcut for a file only one location has decides as the planner does."""

from __future__ import annotations

import itertools

from app.engine.plan import Side, plan_path
from app.engine.sides import new_in_one
from app.locations.base import FileMeta

OLD = FileMeta(5, 1_000, 7)
NEW = FileMeta(9, 2_000, 8)
#: (current, indexed) of one location: absent, new, unchanged, deleted, edited.
VIEWS = [(None, None), (NEW, None), (OLD, OLD), (None, OLD), (NEW, OLD)]


def test_the_shortcut_decides_every_case_it_takes_exactly_as_the_planner() -> None:
    taken = 0
    for count in (1, 2, 3):
        for views in itertools.product(VIEWS, repeat=count):
            sides = {
                f"loc{i}": Side(f"loc{i}", current, indexed)
                for i, (current, indexed) in enumerate(views)
            }
            shortcut = new_in_one(sides)
            if shortcut is not None:
                taken += 1
                assert shortcut == plan_path(list(sides.values())), views
    assert taken == 2 + 3  # one of two, one of three locations has the new file


def test_a_file_new_in_one_of_three_is_copied_to_the_other_two_in_their_order() -> None:
    sides = {k: Side(k, NEW if k == "b" else None, None) for k in ("c", "b", "a")}
    decision = new_in_one(sides)
    assert decision is not None
    assert (decision.source, decision.copy_to, decision.record) == ("b", ("c", "a"), ("b",))
