"""Location specs: every accepted form, and one clear line for every malformed one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app import logsetup
from app.errors import SpecError
from app.locations.registry import parse_spec
from app.logsetup import register_secret, setup_logging


def test_folder_and_zip_paths_are_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_spec("folder:rel/dir").path == str(tmp_path / "rel/dir")
    assert parse_spec("zip:/x/a.zip").key == "zip:/x/a.zip"
    assert parse_spec("folder:~/x").path == str(Path.home() / "x")


def test_original_ftp_form() -> None:
    spec = parse_spec("ftp:bob:s3cret@example.org/backup/photos")
    assert (spec.user, spec.password, spec.host, spec.port, spec.path, spec.tls) == (
        "bob",
        "s3cret",
        "example.org",
        21,
        "/backup/photos",
        False,
    )
    assert str(spec) == "ftp://bob:***@example.org/backup/photos"
    assert "s3cret" not in repr(spec)


def test_url_forms_with_percent_encoded_credentials() -> None:
    spec = parse_spec("ftps://us%40er:p%40ss%3Aw%2Frd@127.0.0.1:2121/d%20ir?verify=no")
    assert spec.user == "us@er" and spec.password == "p@ss:w/rd"
    assert spec.port == 2121 and spec.path == "/d ir" and spec.tls
    assert spec.option("verify") == "no"
    assert spec.key == "ftps://us@er@127.0.0.1:2121/d ir"
    assert "p@ss" not in spec.redacted


def test_anonymous_ftp() -> None:
    spec = parse_spec("ftp://127.0.0.1/pub")
    assert spec.user == "" and spec.password == ""


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "empty location"),
        ("nonsense", "is not a location"),
        ("dropbox:/x", "is not a location"),
        ("/home/me/x", "did you mean folder:/home/me/x"),
        ("/home/me/x.zip", "did you mean zip:/home/me/x.zip"),
        ("folder:", "path is empty"),
        ("ftp://", "no host"),
        ("ftp:user:pw@/x", "no host"),
        ("ftp://u:pw@bad host/x", "is not a host name"),
        ("ftp://u:pw@h:0/x", "out of range"),
        ("ftp://h/../etc", "must not contain '..'"),
    ],
)
def test_malformed_specs_name_the_spec_and_the_forms(raw: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert "pw@" not in message and ":pw" not in message


def test_passwords_are_masked_in_logs(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    log_file = tmp_path / "filesync.log"
    try:
        setup_logging(0, log_file)
        spec = parse_spec("ftp://u:Very-Secret-1@127.0.0.1/x")
        logging.getLogger("test").warning("oops, leaked %s", spec.password)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    text = log_file.read_text()
    assert "oops, leaked ***" in text
    assert "Very-Secret-1" not in text


def test_a_secret_registered_in_one_test_masks_nothing_in_the_next_1() -> None:
    register_secret("else")
    assert "else" in logsetup._SECRETS


def test_a_secret_registered_in_one_test_masks_nothing_in_the_next_2() -> None:
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "nowhere else", None, None)
    logsetup.RedactSecrets().filter(record)
    assert record.getMessage() == "nowhere else"
