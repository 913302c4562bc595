"""The folder scan (``app.locations.folder.scan``): what it lists and what it never touches.

The contract suite checks the listing against every kind; these cover what is particular to
the folder walk: FileSync's own names are recognised by name and place alone, a tree deeper than
the descriptors the walk holds at once is still walked without following links, and ignored
folders can be pruned without reading them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.engine.ignore import IgnoreRules
from app.locations import LocationOptions, open_location
from app.locations.base import FileMeta
from app.locations.folder.location import FolderLocation
from app.locations.folder.nofollow import LinkFreeTree
from app.locations.folder.scan import TreeScan, file_meta
from tests.helpers import write_file


def folder(root: Path) -> FolderLocation:
    root.mkdir(exist_ok=True)
    loc = open_location(f"folder:{root}", LocationOptions())
    assert isinstance(loc, FolderLocation)
    loc.open()
    loc.adopt(has_history=False)
    return loc


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_only_the_root_holds_filesyncs_own_names(tmp_path: Path) -> None:
    loc = folder(tmp_path / "root")
    for rel in (
        ".filesyncignore",
        "sub/.filesyncignore",
        "sub/.filesync/notes.txt",
        "sub/.filesync-tmp-abc",
        ".filesync-tmp-def",
        "sub/.filesync-tmpfile",
        "a.txt",
    ):
        write_file(loc.root / rel, rel)
    assert sorted(loc.scan()) == [
        "a.txt",
        "sub/.filesync-tmpfile",
        "sub/.filesync/notes.txt",
        "sub/.filesyncignore",
    ]
    assert not (loc.root / "sub/.filesync-tmp-abc").exists()  # the first scan clears temps


def test_a_scan_reports_each_file_as_a_stat_of_it_does(tmp_path: Path) -> None:
    """The walk builds the meta inline (for speed); it must equal :func:`file_meta`."""
    loc = folder(tmp_path / "root")
    write_file(loc.root / "a.txt", "x")
    write_file(loc.root / "d/b.bin", b"yy", mtime=1_600_000_000.123456789)
    os.link(loc.root / "a.txt", loc.root / "d/hard.txt")
    listing = loc.scan()
    assert sorted(listing) == ["a.txt", "d/b.bin", "d/hard.txt"]
    for rel, meta in listing.items():
        assert type(meta) is FileMeta
        assert meta == file_meta(os.lstat(loc.root / rel))
    assert loc.other_names("a.txt") == {"d/hard.txt"}


def test_a_tree_deeper_than_the_held_descriptors_is_walked_without_following_links(
    tmp_path: Path,
) -> None:
    loc = folder(tmp_path / "root")
    outside = tmp_path / "outside"
    write_file(outside / "secret.txt", "not ours")
    parts = [f"l{n}" for n in range(90)]
    deep = loc.root.joinpath(*parts)
    write_file(deep / "bottom.txt", "deep")
    write_file(loc.root.joinpath(*parts[:70]) / "middle.txt", "middle")
    loc.root.joinpath(*parts[:75], "link").symlink_to(outside, target_is_directory=True)
    loc.root.joinpath(*parts[:80], "file-link").symlink_to(outside / "secret.txt")
    before = open_descriptors()
    listing = loc.scan()
    assert open_descriptors() == before
    assert set(listing) == {
        "/".join([*parts[:70], "middle.txt"]),
        "/".join([*parts, "bottom.txt"]),
    }
    assert loc.links() == {"/".join([*parts[:75], "link"]), "/".join([*parts[:80], "file-link"])}
    assert sorted(loc.scan("/".join(parts[:85]))) == ["/".join([*parts, "bottom.txt"])]


def test_a_pruned_folder_is_not_read(tmp_path: Path) -> None:
    loc = folder(tmp_path / "root")
    write_file(loc.root / "keep/a.txt", "a")
    write_file(loc.root / "keep/build/b.txt", "b")
    write_file(loc.root / "build/c.txt", "c")
    write_file(loc.root / "keep/build/sub/d.txt", "d")
    asked: list[str] = []

    def prune(rel: str) -> bool:
        asked.append(rel)
        return rel.rsplit("/", 1)[-1] == "build"

    found = TreeScan(LinkFreeTree(loc.root, loc.name), "", clean_temps=False, prune=prune).run()
    assert sorted(found.files) == ["keep/a.txt"]
    assert sorted(asked) == ["build", "keep", "keep/build"]


def test_folders_the_ignore_rules_ignore_whole_are_not_read(tmp_path: Path) -> None:
    loc = folder(tmp_path / "root")
    outside = tmp_path / "outside"
    outside.mkdir()
    write_file(loc.root / "node_modules/pkg/index.js", "x")
    write_file(loc.root / "src/node_modules/dep.js", "y")
    (loc.root / "node_modules/pkg/linked").symlink_to(outside, target_is_directory=True)
    write_file(loc.root / "run.log/part.txt", "z")
    write_file(loc.root / "src/app.log", "a log file")
    write_file(loc.root / "src/main.py", "code")
    loc.prune_folders(IgnoreRules(["node_modules/", "*.log"]).prune)
    assert sorted(loc.scan()) == ["src/app.log", "src/main.py"]  # files are the engine's to drop
    assert loc.links() == frozenset()
    loc.prune_folders(None)
    assert len(loc.scan()) == 5 and loc.links() == {"node_modules/pkg/linked"}


def test_a_negation_anywhere_turns_pruning_off() -> None:
    assert IgnoreRules(["build/", "!build/keep.txt"]).prune is None
    assert IgnoreRules([]).prune is None
    assert IgnoreRules(["build/"]).prune is not None


@pytest.mark.parametrize(
    "pattern",
    ["build/", "/build", "build", "build/**", "*.tmp", "docs/*.md", "**/cache", "a/**/b/", "b*/"],
)
def test_a_pruned_folder_holds_only_ignored_paths(pattern: str) -> None:
    rules = IgnoreRules([pattern])
    folders = ["build", "x/build", "a.tmp", "docs", "cache", "x/cache", "a/c/b", "bin", "src"]
    below = ["f.txt", "sub/g.md", "deep/er/h.tmp"]
    for name in folders:
        if rules.folder_ignored(name):
            assert all(rules.ignored(f"{name}/{rest}") for rest in below), (pattern, name)


@pytest.mark.parametrize("patterns", [[], ["*.log"]])
def test_kept_paths_are_what_ignored_lets_through_in_order(patterns: list[str]) -> None:
    """``kept`` checks many paths at once; it must agree with ``ignored`` path by path."""
    rules = IgnoreRules(patterns)
    many = [f"d{n:05d}/f.txt" for n in range(25_000)]
    assert rules.kept(many) == many
    internal = [".filesync/index", "sub/.filesync-tmp-1", ".filesyncignore", "b.log"]
    mixed = [*many[:12_000], *internal, "sub/.filesyncignore", "z/.filesync/x", *many[12_000:]]
    assert rules.kept(mixed) == [p for p in mixed if not rules.ignored(p)]
    assert "sub/.filesyncignore" in rules.kept(mixed)
