"""The pure planner, with hand-built sides: every rule of latest-write-wins in isolation."""

from __future__ import annotations

from app.engine.conflicts import conflict_name, is_conflict_copy
from app.engine.plan import Decision, Side, SideState, plan_path
from app.locations.base import FileMeta

S = 1_000_000_000
OLD = FileMeta(10, 100 * S)
NEW = FileMeta(12, 200 * S)
NEWER = FileMeta(14, 300 * S)


def side(key: str, current: FileMeta | None, indexed: FileMeta | None, **kw: object) -> Side:
    return Side(key, current, indexed, **kw)  # type: ignore[arg-type]


def test_states() -> None:
    assert side("a", OLD, OLD).state is SideState.UNCHANGED
    assert side("a", None, None).state is SideState.UNCHANGED
    assert side("a", OLD, None).state is SideState.CREATED
    assert side("a", NEW, OLD).state is SideState.EDITED
    assert side("a", None, OLD).state is SideState.DELETED


def test_nothing_changed_is_a_noop() -> None:
    assert plan_path([side("a", OLD, OLD), side("b", OLD, OLD)]).is_noop


def test_edit_propagates_and_is_recorded() -> None:
    d = plan_path([side("a", NEW, OLD), side("b", OLD, OLD), side("c", OLD, OLD)])
    assert d == Decision(source="a", copy_to=("b", "c"), record=("a",))


def test_edit_wins_over_a_newer_unchanged_version() -> None:
    """Restoring an old file (old mtime) is still the user's latest action."""
    d = plan_path([side("a", OLD, NEW), side("b", NEW, NEW)])
    assert d.source == "a" and d.copy_to == ("b",) and not d.conflicts


def test_delete_propagates() -> None:
    d = plan_path([side("a", None, OLD), side("b", OLD, OLD), side("c", None, None)])
    assert d.source is None and d.delete_in == ("b",) and set(d.forget) == {"a", "b"}


def test_edit_beats_delete() -> None:
    d = plan_path([side("a", None, OLD), side("b", NEW, OLD)])
    assert d.source == "b" and d.copy_to == ("a",) and not d.conflicts


def test_two_edits_newest_wins_loser_is_conflict() -> None:
    d = plan_path([side("a", NEW, OLD), side("b", NEWER, OLD)])
    assert d.source == "b" and d.conflicts == ("a",) and d.copy_to == ("a",)


def test_identical_content_is_not_a_conflict() -> None:
    same = FileMeta(12, 250 * S)
    d = plan_path([side("a", NEW, OLD), side("b", same, OLD)], lambda x, y: True)
    assert not d.conflicts and not d.copy_to and set(d.record) == {"a", "b"}


def test_same_size_different_bytes_is_a_conflict() -> None:
    same_size = FileMeta(12, 250 * S)
    d = plan_path([side("a", NEW, OLD), side("b", same_size, OLD)], lambda x, y: False)
    assert d.source == "b" and d.conflicts == ("a",)


def test_first_run_union_no_deletes() -> None:
    d = plan_path([side("a", OLD, None), side("b", None, None)])
    assert d.source == "a" and d.copy_to == ("b",)


def test_new_location_old_copy_loses_to_unchanged_newer() -> None:
    d = plan_path([side("a", NEW, NEW), side("new", OLD, None)])
    assert d.source == "a" and d.conflicts == ("new",)


def test_location_added_later_is_filled_in() -> None:
    d = plan_path([side("a", OLD, OLD), side("new", None, None)])
    assert d.source == "a" and d.copy_to == ("new",)


def test_times_within_coarser_precision_are_equal_when_the_bytes_agree() -> None:
    folder = side("a", FileMeta(5, 100 * S + 700_000_000), None)
    zipped = side("z", FileMeta(5, 100 * S), None, precision_ns=2 * S)
    assert plan_path([folder, zipped], lambda x, y: True).copy_to == ()


def test_two_new_versions_within_a_coarse_clock_are_not_assumed_equal() -> None:
    """Two saves within FTP's 1 s, same size, different bytes: a conflict, not "in sync"."""
    folder = side("a", FileMeta(5, 100 * S + 700_000_000), None)
    ftp = side("f", FileMeta(5, 100 * S), None, precision_ns=S)
    d = plan_path([folder, ftp], lambda x, y: False)
    assert d.source == "a" and d.conflicts == ("f",) and d.copy_to == ("f",)


def test_tie_breaks_deterministically() -> None:
    one = side("a", FileMeta(5, 100 * S), OLD)
    two = side("b", FileMeta(5, 100 * S), OLD)
    assert (
        plan_path([one, two], lambda x, y: False).source
        == plan_path([two, one], lambda x, y: False).source
    )


def test_uncomparable_times_fall_back_to_content() -> None:
    ftp = side("f", FileMeta(5, 999 * S), None, comparable=False)
    folder = side("a", FileMeta(5, 100 * S), None)
    asked: list[tuple[str, str]] = []

    def same(x: str, y: str) -> bool:
        asked.append((x, y))
        return True

    assert not plan_path([ftp, folder], same).copy_to
    assert asked


def test_conflict_names() -> None:
    name = conflict_name("dir/report.final.txt", 1_700_000_000 * S, "my laptop")
    assert name == "dir/report.final.sync-conflict-20231114-221320-my-laptop.txt"
    assert is_conflict_copy(name)
    assert conflict_name(".bashrc", 0, "x") == ".bashrc.sync-conflict-19700101-000000-x"
    long = conflict_name("é" * 200 + ".txt", 0, "lbl")
    assert len(long.encode()) <= 255 and long.endswith("-lbl.txt")


def test_stale_location_that_did_not_change_receives_the_edit() -> None:
    """FTP was down while a changed (and was recorded in a's and b's index)."""
    d = plan_path(
        [side("a", NEW, NEW), side("b", NEW, NEW), side("ftp", OLD, OLD)],
        stale=frozenset({"ftp"}),
    )
    assert d.source in ("a", "b") and d.copy_to == ("ftp",) and not d.conflicts


def test_stale_location_receives_a_delete_made_meanwhile() -> None:
    d = plan_path([side("a", None, None), side("ftp", OLD, OLD)], stale=frozenset({"ftp"}))
    assert d.source is None and d.delete_in == ("ftp",) and d.forget == ("ftp",)


def test_stale_location_that_changed_too_is_a_conflict() -> None:
    d = plan_path([side("a", NEW, NEW), side("ftp", NEWER, OLD)], stale=frozenset({"ftp"}))
    assert d.source == "ftp" and d.conflicts == ("a",)


def test_stale_location_edit_older_than_the_others_loses_but_is_kept() -> None:
    d = plan_path([side("a", NEWER, NEWER), side("ftp", NEW, OLD)], stale=frozenset({"ftp"}))
    assert d.source == "a" and d.conflicts == ("ftp",)


def test_stale_location_deleted_while_others_edited_gets_the_edit() -> None:
    d = plan_path([side("a", NEW, NEW), side("ftp", None, OLD)], stale=frozenset({"ftp"}))
    assert d.source == "a" and d.copy_to == ("ftp",)


def test_same_size_edit_within_coarse_precision_is_checked_by_content() -> None:
    """A ZIP member rewritten within its 2 s clock with the same size still propagates."""
    edited = side(
        "zip", FileMeta(12, 201 * S, tag=2), FileMeta(12, 200 * S, tag=1), precision_ns=2 * S
    )
    folder = side("a", FileMeta(12, 200 * S), FileMeta(12, 200 * S))
    d = plan_path([edited, folder], lambda x, y: False)
    assert d.source == "zip" and d.copy_to == ("a",)
    d = plan_path([edited, folder], lambda x, y: True)
    assert d.copy_to == () and d.record == ("zip",)
