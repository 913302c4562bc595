"""The settings file: round trip, atomic 0600 writes, FTP passwords in the keyring or the file."""

from __future__ import annotations

import logging
import stat
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.config import Config, Secrets, load_config, render_config, save_config
from app.errors import ConfigError
from app.locations.ftp.kind import FTP
from app.locations.registry import parse_spec


class MemorySecrets(Secrets):
    """A usable keyring that lives in a dict, so tests never touch the user's real keyring."""

    def __init__(self, usable: bool = True) -> None:
        self.store: dict[str, str] = {}
        self._usable = usable

    def usable(self) -> bool:
        return self._usable

    def get(self, key: str) -> str | None:
        return self.store.get(key)

    def set(self, key: str, password: str) -> None:
        self.store[key] = password

    def delete(self, key: str) -> None:
        self.store.pop(key, None)


def _sample(tmp_path: Path) -> Config:
    return Config(
        locations=(
            parse_spec(f"folder:{tmp_path / 'a dir'}"),
            parse_spec(f"zip:{tmp_path / 'b.zip'}"),
            FTP.server_spec("ftp.example.org", 2121, "me@home", 'pa:ss@/w"rd', "/backup", tls=True),
        ),
        poll_interval=5.0,
        ignore=("*.tmp", "build/"),
        autostart=True,
    )


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path / "none.toml", MemorySecrets()) == Config()


def test_round_trip_keeps_everything_and_password_goes_to_keyring(tmp_path: Path) -> None:
    secrets = MemorySecrets()
    path = tmp_path / "cfg" / "filesync.toml"
    config = _sample(tmp_path)
    save_config(config, path, secrets)
    text = path.read_text()
    assert "pa:ss" not in text
    assert 'password_store = "keyring"' in text
    assert load_config(path, secrets) == config
    assert load_config(path, secrets).locations[2].password == 'pa:ss@/w"rd'


def test_file_is_mode_0600_and_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "filesync.toml"
    save_config(Config(), path, MemorySecrets())
    first_inode = path.stat().st_ino
    save_config(_sample(tmp_path), path, MemorySecrets())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_ino != first_inode, "a save must rename a new file over the old one"
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["filesync.toml"]


def test_without_keyring_password_is_in_file_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "filesync.toml"
    secrets = MemorySecrets(usable=False)
    with caplog.at_level(logging.WARNING):
        save_config(_sample(tmp_path), path, secrets)
    assert "no usable OS keyring" in caplog.text
    assert "pa:ss" not in caplog.text, "a password must never be logged"
    assert tomllib.loads(path.read_text())["locations"][2]["password"] == 'pa:ss@/w"rd'
    assert load_config(path, secrets) == _sample(tmp_path)


def test_file_is_human_readable_toml(tmp_path: Path) -> None:
    text = render_config(_sample(tmp_path), {"ftps://me@home@ftp.example.org:2121/backup"})
    data = tomllib.loads(text)
    assert data["poll_interval"] == 5.0
    assert data["locations"][0] == {"kind": "folder", "path": str(tmp_path / "a dir")}
    assert data["locations"][2]["host"] == "ftp.example.org"
    assert "[[locations]]" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("poll_interval = -1", "poll_interval"),
        ("ignore = 'x'", "ignore"),
        ("autostart = 'yes'", "autostart"),
        ("[[locations]]\nkind = 'tape'", "kind must be"),
        ("[[locations]]\nkind = 'folder'", "path must be"),
        ("[[locations]]\nkind = 'ftp'\nhost = 'h'\nport = 70000", "out of range"),
        ("poll_interval = ", "not valid TOML"),
    ],
)
def test_invalid_settings_are_explained(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "filesync.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, MemorySecrets())


def test_unknown_keys_survive_a_save(tmp_path: Path) -> None:
    path = tmp_path / "filesync.toml"
    path.write_text('future_option = "x"\n')
    config = load_config(path, MemorySecrets())
    save_config(config, path, MemorySecrets())
    assert tomllib.loads(path.read_text())["future_option"] == "x"


def test_duplicate_location_is_refused(tmp_path: Path) -> None:
    spec = parse_spec(f"folder:{tmp_path}")
    with pytest.raises(ConfigError, match="already"):
        Config().with_location(spec).with_location(spec)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(min_size=0, max_size=12), max_size=4),
    st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s),
)
def test_any_ignore_patterns_and_passwords_round_trip(
    tmp_path_factory: pytest.TempPathFactory, ignore: list[str], password: str
) -> None:
    tmp = tmp_path_factory.mktemp("rt")
    config = Config(
        locations=(FTP.server_spec("host", 21, "u", password, "/", tls=False),),
        ignore=tuple(ignore),
    )
    save_config(config, tmp / "f.toml", MemorySecrets(usable=False))
    assert load_config(tmp / "f.toml", MemorySecrets(usable=False)) == config
