"""``filesync run --dry-run`` (issue 14): what the initial sync would do, changing nothing.

Real folders, a real ZIP archive and a real FTP server, through the real command line; every
file and folder (FileSync's own included) and the state index are compared byte for byte and
time for time before and after.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from app.engine.conflicts import is_conflict_copy
from tests.ftp_server import ThreadedFtpServer
from tests.helpers import tree, write_file
from tests.test_cli import filesync

T0 = 1_700_000_000


def snapshot(*places: Path) -> dict[str, tuple[str, int, int, str]]:
    """Every file and folder under ``places`` (hidden ones too): kind, size, mtime, sha256."""
    found: dict[str, tuple[str, int, int, str]] = {}
    for place in places:
        if not place.exists():
            continue
        entries = [place] + [Path(d, n) for d, dirs, files in os.walk(place) for n in dirs + files]
        for entry in entries:
            st = entry.lstat()
            if entry.is_dir():
                found[str(entry)] = ("dir", 0, st.st_mtime_ns, "")
            else:
                digest = hashlib.sha256(entry.read_bytes()).hexdigest()
                found[str(entry)] = ("file", st.st_size, st.st_mtime_ns, digest)
    return found


def test_dry_run_lists_each_copy_delete_and_conflict_and_changes_nothing(tmp_path: Path) -> None:
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    archive = tmp_path / "z.zip"
    b.mkdir()
    for name in ("keep.txt", "gone.txt", "both.txt"):
        write_file(a / name, f"first {name}", mtime=T0)
    specs = [f"folder:{a}", f"folder:{b}", f"zip:{archive}"]
    first = filesync("run", *specs, "--once", "--state", str(state))
    assert first.returncode == 0, first.stderr
    write_file(a / "sub/new.txt", b"new in a", mtime=T0 + 50)
    (b / "gone.txt").unlink()
    write_file(a / "both.txt", b"a's edit", mtime=T0 + 100)
    write_file(b / "both.txt", b"b's newer edit", mtime=T0 + 200)

    before = snapshot(a, b, archive, state)
    result = filesync("run", *specs, "--dry-run", "--state", str(state))
    assert snapshot(a, b, archive, state) == before, "the dry run changed something"
    assert result.returncode == 0, result.stderr

    lines = result.stdout.splitlines()
    assert lines[0].startswith("dry run: nothing below is done")
    assert f"copy      sub/new.txt  folder:{a} -> folder:{b}, zip:{archive}  (8 B)" in lines
    assert f"delete    gone.txt  in folder:{a}, zip:{archive}" in lines
    (conflict,) = [line for line in lines if line.startswith("conflict  both.txt")]
    copy = re.fullmatch(rf"conflict  both\.txt  folder:{a}'s version kept as (\S+)", conflict)
    assert copy is not None, conflict
    assert f"copy      both.txt  folder:{b} -> folder:{a}, zip:{archive}  (14 B)" in lines
    assert lines[-1] == "total: 6 copies (60 B), 2 deletes, 1 conflict copy"

    # The real sync then does what the dry run said.
    real = filesync("run", *specs, "--once", "--state", str(state))
    assert real.returncode == 0, real.stderr
    assert [p for p in tree(a) if is_conflict_copy(p)] == [copy.group(1)]
    assert tree(a)[copy.group(1)] == b"a's edit"
    assert tree(b)["both.txt"] == b"b's newer edit"
    assert "gone.txt" not in tree(a) and tree(b)["sub/new.txt"] == b"new in a"


def test_a_first_dry_run_creates_no_mark_no_archive_and_no_state(
    tmp_path: Path, ftp_server: ThreadedFtpServer
) -> None:
    a, b, state = tmp_path / "a", tmp_path / "b", tmp_path / "state"
    archive = tmp_path / "new.zip"
    write_file(a / "x.txt", b"x", mtime=T0)
    b.mkdir()
    write_file(ftp_server.root / "on-server.txt", b"from the server", mtime=T0)
    before = snapshot(a, b, ftp_server.root)
    specs = [f"folder:{a}", f"folder:{b}", f"zip:{archive}", ftp_server.url()]
    log_file = tmp_path / "x.log"
    result = filesync(
        "run", *specs, "--dry-run", "--state", str(state), "--log-file", str(log_file)
    )
    assert result.returncode == 0, result.stderr
    assert snapshot(a, b, ftp_server.root) == before
    assert not archive.exists() and not state.exists() and not log_file.exists()
    assert f"copy      x.txt  folder:{a} -> folder:{b}, zip:{archive}, " in result.stdout
    assert "on-server.txt" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("total: 6 copies")


def test_a_dry_run_names_a_location_it_cannot_read(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    state = tmp_path / "state"
    assert filesync("run", f"folder:{a}", f"folder:{b}", "--once", "--state", str(state))
    (b / ".filesync").rmdir()  # a known folder lost its mark: unavailable, deletes held
    result = filesync("run", f"folder:{a}", f"folder:{b}", "--dry-run", "--state", str(state))
    assert result.returncode == 1
    assert f"unavailable (would be retried, not synced): folder:{b}" in result.stdout
    assert not (b / ".filesync").exists()
