"""Start-up refuses setups that would loop on FileSync's own files, and numbers out of range.

The command line is run as a real subprocess; the dialog's rules, the settings file and the
engine are called directly with real folders, symlinks and archives.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.config import load_config
from app.engine.engine import Engine
from app.engine.index import StateIndex
from app.errors import ConfigError, LocationsOverlap
from app.locations import open_location
from app.locations.registry import parse_spec
from app.ui.form import FormError, InUse, LocationForm, build_spec
from tests.engine_fixtures import Rig


def filesync(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "run", *args, "--once"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def refused(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """The one error line of a run that exited 2 naming every one of ``names``."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "synced"
    root.mkdir()
    return root


def test_zip_inside_a_synced_folder_is_refused(folder: Path, tmp_path: Path) -> None:
    archive = folder / "backup.zip"
    line = refused(
        filesync(f"folder:{folder}", f"zip:{archive}", "--state", str(tmp_path / "state")),
        f"zip:{archive}",
        f"folder:{folder}",
    )
    assert "contain itself" in line
    assert not archive.exists()
    assert list(folder.iterdir()) == []


def test_state_folder_inside_a_synced_folder_is_refused(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    state = folder / "state"
    line = refused(
        filesync(f"folder:{folder}", f"folder:{other}", "--state", str(state)),
        str(state),
        f"folder:{folder}",
    )
    assert "--state" in line
    assert not state.exists()


def test_log_file_inside_a_synced_folder_is_refused(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    log_file = folder / "sync.log"
    state = tmp_path / "state"
    args = (f"folder:{other}", f"folder:{folder}", "--state", str(state))
    line = refused(filesync(*args, "--log-file", str(log_file)), str(log_file), str(folder))
    assert "--log-file" in line
    assert not log_file.exists()
    assert not state.exists()


def test_nested_folders_are_refused(folder: Path, tmp_path: Path) -> None:
    sub = folder / "sub"
    sub.mkdir()
    line = refused(
        filesync(f"folder:{sub}", f"folder:{folder}", "--state", str(tmp_path / "state")),
        f"folder:{sub}",
        f"folder:{folder}",
    )
    assert "sub/sub" in line
    assert list(sub.iterdir()) == []


def test_same_folder_spelled_with_dotdot_is_refused(folder: Path, tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    line = refused(
        filesync("folder:synced", "folder:synced/../synced", "--state", state, cwd=tmp_path),
        f"folder:{folder}",
        f"folder:{folder}/../synced",
    )
    assert "same folder" in line


def test_same_folder_through_a_symlink_is_refused(folder: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(folder)
    line = refused(
        filesync(f"folder:{folder}", f"folder:{link}", "--state", str(tmp_path / "state")),
        f"folder:{folder}",
        f"folder:{link}",
    )
    assert "same folder" in line


def test_side_by_side_locations_with_a_common_prefix_are_fine(tmp_path: Path) -> None:
    for name in ("a", "ab"):
        (tmp_path / name).mkdir()
    result = filesync(
        f"folder:{tmp_path / 'a'}",
        f"folder:{tmp_path / 'ab'}",
        f"zip:{tmp_path / 'a.zip'}",
        "--state",
        str(tmp_path / "a-state"),
        "--log-file",
        str(tmp_path / "a.log"),
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--debounce", "nan"),
        ("--poll-interval", "inf"),
        ("--rescan-interval", "1e300"),
        ("--trash-days", "-1"),
        ("--trash-days", "infinity"),
        ("--trash-max-mb", "inf"),
    ],
)
def test_non_finite_or_negative_numbers_are_one_line_usage_errors(
    tmp_path: Path, option: str, value: str
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    state = tmp_path / "state"
    result = filesync(f"folder:{a}", f"folder:{b}", "--state", str(state), option, value)
    refused(result, option, repr(value))
    assert not state.exists()


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "-2", "0", "1e300", "true"])
def test_settings_file_refuses_numbers_out_of_range(tmp_path: Path, value: str) -> None:
    path = tmp_path / "filesync.toml"
    path.write_text(f"poll_interval = {value}\n")
    with pytest.raises(ConfigError, match="poll_interval") as err:
        load_config(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("port", ["inf", "nan", "-21", "0", "70000", "21.0", "1e3", ""])
def test_dialog_refuses_ports_that_are_not_whole_numbers_in_range(port: str) -> None:
    with pytest.raises(FormError) as err:
        build_spec(LocationForm(kind="ftp", host="h", port=port))
    assert set(err.value.fields) == {"port"}
    assert "between 1 and 65535" in err.value.fields["port"]


def in_use(*specs: str, state: Path | None = None, log: Path | None = None) -> InUse:
    return InUse(tuple(parse_spec(s) for s in specs), state, log)


def test_dialog_refuses_an_archive_inside_a_synced_folder(folder: Path, tmp_path: Path) -> None:
    form = LocationForm(kind="zip", path=str(folder / "x.zip"))
    with pytest.raises(FormError) as err:
        build_spec(form, in_use=in_use(f"folder:{folder}", state=tmp_path / "state"))
    assert "contain itself" in err.value.fields["path"]
    outside = LocationForm(kind="zip", path=str(tmp_path / "x.zip"))
    assert build_spec(outside, in_use=in_use(f"folder:{folder}")).kind == "zip"


def test_dialog_refuses_a_folder_holding_the_state_log_or_a_location(
    folder: Path, tmp_path: Path
) -> None:
    form = LocationForm(kind="folder", path=str(tmp_path))
    cases = [
        (in_use(state=folder / "state"), "--state"),
        (in_use(log=tmp_path / "filesync.log"), "--log-file"),
        (in_use(f"folder:{folder}"), "synced/synced"),
        (in_use(f"zip:{folder / 'x.zip'}"), "contain itself"),
    ]
    for taken, expected in cases:
        with pytest.raises(FormError) as err:
            build_spec(form, in_use=taken)
        assert expected in err.value.fields["path"]


def test_dialog_refuses_the_same_folder_through_a_symlink(folder: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(folder)
    with pytest.raises(FormError, match="same folder"):
        build_spec(LocationForm(kind="folder", path=str(link)), in_use=in_use(f"folder:{folder}"))


def test_engine_refuses_to_add_an_archive_inside_one_of_its_folders(rig: Rig) -> None:
    engine = rig.start(watch=False)
    with pytest.raises(LocationsOverlap, match="contain itself"):
        engine.add_location(open_location(f"zip:{rig.roots[0] / 'x.zip'}"))
    with pytest.raises(LocationsOverlap, match="same folder"):
        engine.add_location(open_location(f"folder:{rig.roots[1]}/../b"))
    assert not (rig.roots[0] / "x.zip").exists()


def test_engine_refuses_a_state_folder_inside_a_location(folder: Path) -> None:
    index = StateIndex(folder / ".state" / "index.sqlite")
    try:
        with pytest.raises(LocationsOverlap, match="state folder"):
            Engine([open_location(f"folder:{folder}")], index)
    finally:
        index.close()


def test_an_overlap_naming_a_path_with_a_line_break_stays_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "two\nlines"
    folder.mkdir()
    state = tmp_path / "state"
    line = refused(filesync(f"folder:{folder}", f"zip:{folder / 'x.zip'}", "--state", str(state)))
    assert "two\\nlines" in line
