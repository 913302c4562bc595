"""The engine over real folders with real watchdog observers: the behaviour users rely on."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.engine_fixtures import Rig
from tests.helpers import describe_trees, tree, trees_equal, wait_until, write_file

T = 1_700_000_000  # a fixed past mtime, in seconds


def converge(rig: Rig, timeout: float = 30) -> None:
    wait_until(lambda: trees_equal(*rig.roots), timeout, lambda: describe_trees(*rig.roots))


def test_first_run_copies_the_union_and_deletes_nothing(rig: Rig) -> None:
    a, b, c = rig.roots
    write_file(a / "only-a.txt", "A")
    write_file(b / "sub/only-b.txt", "B")
    write_file(c / "same.txt", "same", mtime=T)
    write_file(a / "same.txt", "same", mtime=T)
    assert rig.once()
    assert (
        tree(a)
        == tree(b)
        == tree(c)
        == {
            "only-a.txt": b"A",
            "sub/only-b.txt": b"B",
            "same.txt": b"same",
        }
    )


def test_new_file_propagates_live(rig: Rig) -> None:
    rig.start()
    write_file(rig.roots[0] / "new.txt", "hello")
    converge(rig)
    assert tree(rig.roots[2]) == {"new.txt": b"hello"}


def test_edit_and_delete_propagate_live(rig: Rig) -> None:
    a, b, c = rig.roots
    write_file(a / "f.txt", "v1", mtime=T)
    rig.start()
    converge(rig)
    write_file(b / "f.txt", "version two")
    wait_until(lambda: tree(c).get("f.txt") == b"version two", message="edit reaches c")
    (c / "f.txt").unlink()
    wait_until(lambda: tree(a) == {} and tree(b) == {}, message="delete reaches a and b")


def test_a_delete_made_the_moment_an_edit_lands_propagates(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user deletes the new version in c the instant FileSync renamed it into place, before
    FileSync could look at it: that is a delete of the new version, and it reaches a and b."""
    a, b, c = rig.roots
    write_file(a / "f.txt", "v1", mtime=T)
    rig.start()
    converge(rig)
    replace = os.replace
    deleted: list[str] = []

    def replace_then_delete(src: str, dst: str, **dir_fds: int) -> None:
        replace(src, dst, **dir_fds)
        into = dir_fds.get("dst_dir_fd")
        if into is not None and dst == "f.txt" and os.path.samefile(f"/proc/self/fd/{into}", c):
            os.unlink(dst, dir_fd=into)  # the user, faster than FileSync's look at its copy
            deleted.append(dst)

    monkeypatch.setattr(os, "replace", replace_then_delete)
    write_file(b / "f.txt", "version two")
    wait_until(lambda: deleted, message="the new version landing in c")
    wait_until(lambda: tree(a) == tree(b) == tree(c) == {}, message="delete reaches a and b")


def test_a_save_made_the_moment_an_edit_lands_propagates(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user saves over the new version in c (an editor's replace) the instant FileSync
    renamed it into place, before FileSync could look at it: that save is an edit of c, not
    FileSync's copy, so it reaches a and b, and nothing is lost."""
    a, b, c = rig.roots
    write_file(a / "f.txt", "v1", mtime=T)
    rig.start()
    converge(rig)
    replace = os.replace
    saved: list[str] = []

    def replace_then_save(src: str, dst: str, **dir_fds: int) -> None:
        replace(src, dst, **dir_fds)
        into = dir_fds.get("dst_dir_fd")
        in_c = into is not None and os.path.samefile(f"/proc/self/fd/{into}", c)
        if in_c and dst == "f.txt" and not saved:
            # The user, faster than FileSync's look at its copy: a new file renamed over.
            write_file(c / "user-save.tmp", "the user's save", mtime=T + 200)
            replace("user-save.tmp", dst, src_dir_fd=into, dst_dir_fd=into)
            saved.append(dst)

    monkeypatch.setattr(os, "replace", replace_then_save)
    write_file(b / "f.txt", "version two", mtime=T + 100)
    wait_until(lambda: saved, message="the new version landing in c")
    want = {"f.txt": b"the user's save"}
    wait_until(
        lambda: tree(a) == tree(b) == tree(c) == want,
        message=lambda: "the save reaches a and b: " + describe_trees(*rig.roots),
    )


def test_mtime_is_preserved(rig: Rig) -> None:
    a, b, _ = rig.roots
    write_file(a / "old.txt", "x", mtime=T)
    rig.start()
    converge(rig)
    assert os.stat(b / "old.txt").st_mtime_ns == T * 10**9


def test_delete_made_while_stopped_is_propagated(rig: Rig) -> None:
    a, b, c = rig.roots
    write_file(a / "doomed.txt", "bye")
    write_file(a / "kept.txt", "stay")
    assert rig.once()
    (b / "doomed.txt").unlink()
    assert rig.once()
    assert tree(a) == tree(c) == {"kept.txt": b"stay"}


def test_new_file_made_while_stopped_is_copied(rig: Rig) -> None:
    a, _, c = rig.roots
    write_file(a / "x.txt", "x")
    assert rig.once()
    write_file(c / "later.txt", "later")
    assert rig.once()
    assert tree(a)["later.txt"] == b"later"


def test_concurrent_edits_keep_loser_as_conflict_copy(rig: Rig) -> None:
    a, b, _c = rig.roots
    write_file(a / "doc.txt", "base", mtime=T)
    assert rig.once()
    write_file(a / "doc.txt", "edit in a (older)", mtime=T + 100)
    write_file(b / "doc.txt", "edit in b (newer)", mtime=T + 200)
    assert rig.once()
    for root in rig.roots:
        files = tree(root)
        assert files["doc.txt"] == b"edit in b (newer)"
        copies = [n for n in files if ".sync-conflict-" in n]
        assert len(copies) == 1, files
        assert files[copies[0]] == b"edit in a (older)"
        assert copies[0].startswith("doc.sync-conflict-") and copies[0].endswith("-a.txt")


def test_identical_edits_are_not_a_conflict(rig: Rig) -> None:
    a, b, _ = rig.roots
    write_file(a / "doc.txt", "base", mtime=T)
    assert rig.once()
    write_file(a / "doc.txt", "same edit", mtime=T + 100)
    write_file(b / "doc.txt", "same edit", mtime=T + 200)
    assert rig.once()
    for root in rig.roots:
        assert tree(root) == {"doc.txt": b"same edit"}


def test_edit_beats_concurrent_delete(rig: Rig) -> None:
    a, b, _c = rig.roots
    write_file(a / "doc.txt", "base", mtime=T)
    assert rig.once()
    (a / "doc.txt").unlink()
    write_file(b / "doc.txt", "edited", mtime=T + 50)
    assert rig.once()
    for root in rig.roots:
        assert tree(root) == {"doc.txt": b"edited"}


def test_old_copy_in_a_new_location_does_not_overwrite_newer_files(rig: Rig) -> None:
    a, b, c = rig.roots
    write_file(a / "doc.txt", "new", mtime=T + 100)
    rig.roots = [a, b]
    assert rig.once()
    write_file(c / "doc.txt", "stale backup", mtime=T)
    rig.roots = [a, b, c]
    assert rig.once()
    for root in rig.roots:
        files = tree(root)
        assert files["doc.txt"] == b"new"
        assert any(".sync-conflict-" in n for n in files), files


def test_engine_writes_do_not_echo(rig: Rig) -> None:
    engine = rig.start()
    a = rig.roots[0]
    for i in range(20):
        write_file(a / f"f{i}.txt", f"content {i}")
    converge(rig)
    assert engine.wait_idle(10)
    keys = [loc.key for loc in rig.locations()]
    counts = [engine.writes(k) for k in keys]
    assert counts == [0, 20, 20]
    # A quiet period: echoes of our own writes would show up as more writes.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        engine.wait_idle(1)
    assert [engine.writes(k) for k in keys] == [0, 20, 20]


def test_overwritten_versions_go_to_trash(rig: Rig) -> None:
    a, b, _ = rig.roots
    write_file(a / "t.txt", "first", mtime=T)
    assert rig.once()
    write_file(a / "t.txt", "second", mtime=T + 10)
    assert rig.once()
    trashed = [p.read_bytes() for p in (b / ".filesync/trash").rglob("t.txt")]
    assert trashed == [b"first"]


def test_rename_is_propagated_without_recopy(rig: Rig) -> None:
    a, b, _c = rig.roots
    write_file(a / "dir/big.bin", os.urandom(100_000), mtime=T)
    engine = rig.start()
    converge(rig)
    inode_b = os.stat(b / "dir/big.bin").st_ino
    os.rename(a / "dir/big.bin", a / "dir/renamed.bin")
    converge(rig)
    assert os.stat(b / "dir/renamed.bin").st_ino == inode_b
    keys = [loc.key for loc in rig.locations()]
    assert [engine.writes(k) for k in keys] == [0, 1, 1]


def test_new_subfolder_burst_is_fully_seen(rig: Rig) -> None:
    rig.start()
    a = rig.roots[0]
    target = a / "burst"
    target.mkdir()
    for i in range(300):
        write_file(target / f"{i:03}.txt", str(i))
    wait_until(
        lambda: len(tree(rig.roots[1])) == 300 and len(tree(rig.roots[2])) == 300,
        message=lambda: f"300 files in b and c (have {len(tree(rig.roots[1]))})",
    )


def test_ignore_patterns_are_respected(rig: Rig) -> None:
    a, b, _ = rig.roots
    write_file(a / ".filesyncignore", "*.tmp\nbuild/\n")
    write_file(a / "keep.txt", "k")
    write_file(a / "skip.tmp", "s")
    write_file(a / "build/out.o", "o")
    assert rig.once(ignore=("*.log",))
    write_file(b / "x.log", "log")
    assert rig.once(ignore=("*.log",))
    assert tree(b) == {"keep.txt": b"k", "x.log": b"log"}
    assert set(tree(a)) == {"keep.txt", "skip.tmp", "build/out.o"}
    assert not (b / ".filesyncignore").exists()


def test_rename_onto_an_existing_file_propagates_the_moved_content(rig: Rig) -> None:
    a = rig.roots[0]
    write_file(a / "target.txt", "old target", mtime=T)
    write_file(a / "source.txt", "the moved content", mtime=T + 10)
    rig.start()
    converge(rig)
    os.replace(a / "source.txt", a / "target.txt")
    wait_until(
        lambda: all(tree(r) == {"target.txt": b"the moved content"} for r in rig.roots),
        message=lambda: describe_trees(*rig.roots),
    )


def test_mass_delete_is_held_until_confirmed(rig: Rig) -> None:
    a, b, c = rig.roots
    for i in range(20):
        write_file(a / f"f{i}.txt", str(i))
    assert rig.once()
    for path in b.iterdir():
        if path.is_file():
            path.unlink()
    engine = rig.start(watch=False)
    status = {s.key: s for s in engine.status().locations}[f"folder:{b}"]
    assert status.state.value == "error"
    assert "--allow-mass-delete" in status.last_error
    assert len(tree(a)) == 20 and len(tree(c)) == 20, "held deletes must not propagate"
    rig.stop()
    assert len(tree(a)) == 20
    assert rig.once(allow_mass_delete=True)
    assert tree(a) == tree(b) == tree(c) == {}


def test_removed_root_mark_holds_deletes(rig: Rig) -> None:
    a, b, c = rig.roots
    write_file(a / "precious.txt", "keep me")
    assert rig.once()
    for root in (b,):  # the "drive" vanishes: its content and its mark are gone
        for path in sorted(root.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    assert not rig.once()
    assert tree(a) == tree(c) == {"precious.txt": b"keep me"}
    engine = rig.start(watch=False)
    row = {s.key: s for s in engine.status().locations}[f"folder:{b}"]
    assert row.state.value == "unavailable"
    assert ".filesync" in row.last_error


def test_root_vanishing_while_running_deletes_nothing_elsewhere(rig: Rig) -> None:
    import shutil

    a, b, c = rig.roots
    for i in range(3):
        write_file(a / f"d/f{i}.txt", str(i))
    engine = rig.start()
    converge(rig)
    shutil.rmtree(b)
    wait_until(
        lambda: (
            {s.key: s for s in engine.status().locations}[f"folder:{b}"].state.value
            == "unavailable"
        ),
        message="b reported unavailable",
    )
    assert engine.wait_idle(10)
    assert len(tree(a)) == 3 and len(tree(c)) == 3


def test_odd_names_survive(rig: Rig) -> None:
    a, b, c = rig.roots
    names = [
        "unicode/日本語 ファイル.txt",
        "spaces in name/and more.txt",
        "émojis 🙂/ok.txt",
        "x" * 240 + ".txt",
        "deep/" * 20 + "leaf.txt",
        "#percent%20&quote'.txt",
    ]
    for i, name in enumerate(names):
        write_file(a / name, f"n{i}")
    rig.start()
    converge(rig)
    assert sorted(tree(c)) == sorted(names)
    os.rename(a / names[0], a / "unicode/改名.txt")
    wait_until(lambda: "unicode/改名.txt" in tree(b), message="unicode rename")


def test_symlinks_are_skipped_not_followed(rig: Rig, tmp_path: Path) -> None:
    a, b, _ = rig.roots
    secret = write_file(tmp_path / "outside.txt", "outside the root")
    os.symlink(secret, a / "link.txt")
    write_file(a / "real.txt", "real")
    assert rig.once()
    assert tree(b) == {"real.txt": b"real"}


def test_unreadable_file_is_retried_and_does_not_stop_the_engine(rig: Rig) -> None:
    if os.geteuid() == 0:
        # root reads anything; simulate "unreadable" with a file that vanishes instead
        a, b, _ = rig.roots
        rig.start()
        for i in range(50):
            p = write_file(a / f"flash{i}.txt", "x")
            p.unlink()
        write_file(a / "after.txt", "still syncing")
        wait_until(lambda: tree(b).get("after.txt") == b"still syncing", message="after.txt")
        wait_until(lambda: trees_equal(*rig.roots), message=lambda: describe_trees(*rig.roots))
        return
    a, b, _ = rig.roots
    locked = write_file(a / "locked.txt", "secret")
    locked.chmod(0)
    write_file(a / "open.txt", "open")
    rig.start()
    wait_until(lambda: tree(b).get("open.txt") == b"open", message="open.txt copied")
    locked.chmod(0o644)
    wait_until(lambda: tree(b).get("locked.txt") == b"secret", 30, "locked.txt after retry")


def test_old_trash_is_pruned(rig: Rig) -> None:
    a, b, _ = rig.roots
    write_file(a / "t.txt", "v1", mtime=T)
    assert rig.once()
    old = b / ".filesync/trash/20000101-000000/t.txt"
    write_file(old, "ancient")
    recent = write_file(b / ".filesync/trash/29991231-000000/t.txt", "future")
    assert rig.once()
    assert not old.exists()
    assert recent.exists()


def test_status_activity_pause_and_resume(rig: Rig) -> None:
    a, b, _ = rig.roots
    engine = rig.start()
    status = engine.status()
    assert [s.state.value for s in status.locations] == ["ok", "ok", "ok"]
    seen: list[str] = []
    engine.add_listener(lambda act: seen.append(f"{act.action} {act.path}"))
    engine.pause()
    write_file(a / "while-paused.txt", "p")
    wait_until(lambda: engine.status().pending >= 1, message="the change queued while paused")
    assert engine.wait_idle(10)
    assert "while-paused.txt" not in tree(b), "a paused engine must not copy"
    assert engine.status().paused
    engine.resume()
    converge(rig)
    # the copy is recorded once its group's durability pass is done, just after it shows
    wait_until(lambda: "copied while-paused.txt" in seen, message="the copy's activity record")
    assert any(act.path == "while-paused.txt" for act in engine.status().activity)
    assert engine.status().last_sync is not None


def test_held_deletes_do_not_stop_other_changes(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    a, b, c = rig.roots
    for i in range(10):
        write_file(a / f"f{i}.txt", f"v{i}", mtime=T)
    assert rig.once()
    for i in range(1, 9):
        (a / f"f{i}.txt").unlink()
    write_file(b / "f0.txt", "edited in b", mtime=T + 100)
    engine = rig.start()
    assert engine.wait_idle(10)
    assert tree(c)["f0.txt"] == b"edited in b"
    assert len(tree(c)) == 10, "a's held deletes must not reach c"
    assert sum("changed while it was being synced" in r.message for r in caplog.records) < 3


def test_folder_that_comes_back_is_watched_again(rig: Rig) -> None:
    import shutil

    a, b, _ = rig.roots
    write_file(a / "x.txt", "x")
    engine = rig.start()
    converge(rig)
    shutil.rmtree(a)
    key = f"folder:{a}"
    wait_until(
        lambda: {s.key: s for s in engine.status().locations}[key].state.value == "unavailable",
        message="a unavailable",
    )
    (a / ".filesync").mkdir(parents=True)
    wait_until(
        lambda: {s.key: s for s in engine.status().locations}[key].state.value == "ok",
        message="a back",
    )
    write_file(a / "new.txt", "after the comeback")
    wait_until(lambda: tree(b).get("new.txt") == b"after the comeback", 10, "live event from a")
