"""A run pays only for what it uses: boto3, paramiko, ftplib and ssl, the dashboard and
watchdog load on demand.

Each check runs a fresh interpreter (a real subprocess) and reads its ``sys.modules``: in
this test process the modules are long loaded by other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.locations.folder.scan import SPEEDUP as SCAN_IN_C
from tests.helpers import tree, write_file

#: Loaded only when a location of their kind is opened, the dashboard served, or a folder
#: watched (a --once run watches nothing).
HEAVY = ("boto3", "botocore", "paramiko", "ftplib", "ssl", "starlette", "uvicorn", "watchdog")


#: Not used by ``run --once`` over folders given ``--state``, without ignore patterns: every
#: start, a restart with nothing changed included, would pay for their imports.
UNUSED_BY_A_FOLDER_RUN = (
    "pathspec",  # only with ignore patterns
    "platformdirs",  # only without --state (and for the desktop app's settings and logs)
    "logging.handlers",  # only for a rotated log file
    "app.locations.zip.location",  # only when a zip: location is built
    "app.engine.preview",  # only for --dry-run
    "uuid",
    "ctypes.util",  # find_library runs `ldconfig -p` in a child process
    "subprocess",
    # Each of these cost 0.3-2.5 ms of every start (a 10,000-file restart takes ~0.1 s):
    "hashlib",  # loads OpenSSL; only for a conflict's digests (the lock's name: built-in sha256)
    "socket",  # the instance lock binds with _socket; socket.py builds enums at import
    "calendar",  # only to prune a trash with entries
    "tempfile",  # only to keep a conflict's loser aside through a spool
    "shutil",  # argparse's formatter asks it the terminal's width: ours asks os (bz2, lzma)
    "app.web.bind",  # only with --web or `filesync service`
    "app.web.control",  # only when serving the dashboard
    "app.ui.form",
    "app.askpath",  # only to ask for the locations file on a terminal
    "app.watch.choose",  # a --once run watches nothing
    "app.watch.poller",
    "app.watch.writes",
)
#: Nor by a restart that finds nothing to do: the index writes its rows as one JSON array, the
#: groups of copies (with their three dataclasses) are made for the first copy, and a folder
#: loads its write modules (``ctypes`` for ``syncfs``) for its first group.
UNUSED_BY_A_RESTART = (
    *UNUSED_BY_A_FOLDER_RUN,
    "json",
    "app.engine.copies",
    "app.locations.folder.batch",
    "app.locations.folder.durability",
    # A folder's statfs is the folder scan's C module's (else it goes through ctypes).
    *(("ctypes",) if SCAN_IN_C else ()),
)


def _loaded_after(script: str, tmp_path: Path, names: tuple[str, ...] = HEAVY) -> list[str]:
    """Run ``script`` in a new interpreter; which of ``names`` it had loaded at the end."""
    report = tmp_path / "modules.json"
    code = (  # the names are read before this report's own json loads
        f"{script}\nimport sys\nloaded = [m for m in {names!r} if m in sys.modules]\n"
        f"import json\njson.dump(loaded, open({str(report)!r}, 'w'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(report.read_text())
    return loaded


def test_importing_the_command_line_loads_no_server_library(tmp_path: Path) -> None:
    assert _loaded_after("import app.cli", tmp_path) == []


def _once_over_two_folders(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """Folders ``a`` (one file) and ``b`` (empty), and the arguments of ``--once`` over them."""
    a, b = tmp_path / "a", tmp_path / "b"
    write_file(a / "x/y.txt", "hello")
    b.mkdir()
    return a, b, ["run", f"folder:{a}", f"folder:{b}", "--once", "--state", str(tmp_path / "state")]


def _main(argv: list[str]) -> str:
    """A script running the command line with ``argv``, which must succeed."""
    return f"from app.cli import main\nassert main({argv!r}) == 0"


def test_once_over_two_folders_loads_no_server_library(tmp_path: Path) -> None:
    _a, b, argv = _once_over_two_folders(tmp_path)
    script = _main(argv)
    assert _loaded_after(script, tmp_path) == []
    assert tree(b) == {"x/y.txt": b"hello"}


def test_once_over_two_folders_loads_only_what_it_uses(tmp_path: Path) -> None:
    a, b, argv = _once_over_two_folders(tmp_path)
    script = _main(argv)
    assert _loaded_after(script, tmp_path, UNUSED_BY_A_FOLDER_RUN) == []
    assert tree(b) == {"x/y.txt": b"hello"}
    argv += ["--ignore", "*.tmp"]  # patterns: now pathspec is used
    write_file(a / "x/skip.tmp", "not synced")
    script = _main(argv)
    assert _loaded_after(script, tmp_path, UNUSED_BY_A_RESTART) == ["pathspec"]
    assert tree(b) == {"x/y.txt": b"hello"}


def test_every_kind_is_known_without_its_library(tmp_path: Path) -> None:
    script = (
        "from app.locations.registry import KINDS, parse_spec\n"
        "assert {'s3', 'sftp'} <= {k.name for k in KINDS}\n"
        "assert parse_spec('s3://bucket/p?endpoint=http://127.0.0.1:9').kind == 's3'\n"
        "assert parse_spec('sftp://me@127.0.0.1:2222/srv').kind == 'sftp'\n"
        "assert parse_spec('ftps://me@127.0.0.1/srv').kind == 'ftp'\n"
        "assert [f.name for f in next(k for k in KINDS if k.name == 's3').form.fields]\n"
    )
    assert _loaded_after(script, tmp_path) == []


def test_building_a_location_loads_its_library(tmp_path: Path) -> None:
    script = (
        "from app.locations import open_location\n"
        "open_location('s3://bucket/p?endpoint=http://127.0.0.1:9')\n"
        "open_location('sftp://me@127.0.0.1:2222/srv')\n"
        "open_location('ftp://me@127.0.0.1:2121/srv')\n"
        f"open_location('zip:{tmp_path}/archive.zip')\n"
    )
    names = (*HEAVY, "app.locations.zip.location")
    loaded = _loaded_after(script, tmp_path, names)
    assert {"boto3", "paramiko", "ftplib", "app.locations.zip.location"} <= set(loaded)
    assert "starlette" not in loaded


#: The dataclasses a folder run still builds. Building one generates and compiles its methods
#: (0.2-0.8 ms each; 32 of them took 13 ms of every start), so a record is a NamedTuple or a
#: plain class instead (``LocationSpec``, ``Field``, and ``Side``, ``Decision`` and ``WriteJob``,
#: built per path or copy, are slotted classes with their own ``__init__``: as cheap to build).
#: These stay, built only once a run copies a file: a restart with nothing to copy does not
#: load ``dataclasses`` (and ``inspect`` with it) at all.
DATACLASSES_OF_A_FOLDER_RUN = {
    "app.engine.copies.CopyFailed",
    "app.engine.copies.PendingCopy",
    "app.engine.copies._Group",
    "app.locations.folder.staging._Item",
}
#: Loaded to build dataclasses, and for nothing else a restart over folders does.
DATACLASS_MODULES = ("dataclasses", "inspect")


def test_once_over_two_folders_builds_few_dataclasses(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_file(a / "x/y.txt", "hello")
    b.mkdir()
    argv = ["run", f"folder:{a}", f"folder:{b}", "--once", "--state", str(tmp_path / "state")]
    report = tmp_path / "dataclasses.txt"
    script = (
        f"from app.cli import main\nassert main({argv!r}) == 0\n"
        "import app.config  # its Config: a dataclass the report must see\n"
        "import dataclasses, sys\n"
        "built = sorted(f'{name}.{cls.__qualname__}'\n"
        "    for name, module in list(sys.modules.items()) if name.startswith('app.')\n"
        "    for cls in vars(module).values()\n"
        "    if isinstance(cls, type) and cls.__module__ == name\n"
        "    and dataclasses.is_dataclass(cls))\n"
        f"open({str(report)!r}, 'w').write('\\n'.join(built))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    built = set(report.read_text().split())
    assert "app.config.Config" in built  # the report sees dataclasses at all
    built.remove("app.config.Config")
    assert built - DATACLASSES_OF_A_FOLDER_RUN == set(), "make these NamedTuples or plain classes"


def test_a_restart_over_folders_that_copies_nothing_loads_no_dataclasses(tmp_path: Path) -> None:
    a, b, argv = _once_over_two_folders(tmp_path)
    script = _main(argv)
    assert _loaded_after(script, tmp_path, DATACLASS_MODULES) == list(DATACLASS_MODULES)  # copies
    assert tree(b) == {"x/y.txt": b"hello"}
    assert _loaded_after(script, tmp_path, DATACLASS_MODULES) == []  # the restart
    write_file(a / "x/y.txt", "changed")  # and the next run that copies loads them again
    assert _loaded_after(script, tmp_path, DATACLASS_MODULES) == list(DATACLASS_MODULES)
    assert tree(b) == {"x/y.txt": b"changed"}
