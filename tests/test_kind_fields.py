"""A kind declares its dialog fields, its test and its poll interval; nothing else names it."""

from __future__ import annotations

import queue
from pathlib import Path
from urllib.parse import quote

import pytest

from app.errors import AuthenticationFailed
from app.locations import LocationOptions, open_location, parse_spec
from app.locations.form.fields import ConnectionReport, FormStyle
from app.locations.registry import KINDS, kind_of
from app.ui.form import FormError, LocationForm, build_spec
from app.watch.choose import watcher_for
from tests import probe_kind
from tests.ftp_server import PASSWORD, USER, ThreadedFtpServer
from tests.s3_server import KEY as S3_KEY
from tests.s3_server import SECRET as S3_SECRET
from tests.s3_server import S3Server
from tests.sshd_server import HOST as SSH_HOST
from tests.sshd_server import SftpServer


def test_a_kind_of_any_fields_turns_its_values_into_its_spec_and_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe_kind.register(monkeypatch)
    form = LocationForm(
        "probe", root=str(tmp_path), nickname="nas", secret="s3cr3t", mode="careful", verbose=True
    )
    spec = build_spec(form)
    assert (spec.kind, spec.path, spec.password) == ("probe", str(tmp_path), "s3cr3t")
    assert dict(spec.options) == {
        "nickname": "nas",
        "port": "4000",
        "mode": "careful",
        "key": "",
        "verbose": "yes",
    }
    values = probe_kind.PROBE.form.values(spec)
    assert build_spec(LocationForm("probe", **values)) == spec


def test_a_kinds_own_messages_come_first_and_required_fields_are_checked_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe_kind.register(monkeypatch)
    with pytest.raises(FormError) as err:
        build_spec(LocationForm("probe", root=str(tmp_path / "no"), port="x"))
    assert err.value.fields == {"root": "no such folder", "nickname": "required"}
    with pytest.raises(FormError) as err:
        build_spec(LocationForm("probe", root=str(tmp_path), nickname="  "))
    assert err.value.fields == {"nickname": "required"}
    with pytest.raises(FormError, match="choose one of Probe, Folder"):
        build_spec(LocationForm("nope"))


def test_every_registered_kind_round_trips_its_own_form(tmp_path: Path) -> None:
    where = {
        FormStyle.FOLDER: str(tmp_path),
        FormStyle.FILE: str(tmp_path),
        FormStyle.SERVER: "/remote dir",
    }
    for kind in KINDS:
        example = kind.forms[0].replace("/path", where[kind.form.style])
        example = example.replace("password", "p:w@").replace("=URL", "=http://127.0.0.1:9")
        spec = parse_spec(example)
        assert kind.form.to_spec(kind.form.values(spec)) == spec, kind.name


def test_the_poll_interval_is_the_runs_choice_else_the_kinds_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe_kind.register(monkeypatch)
    spec = parse_spec(f"probe:{tmp_path}")
    assert open_location(spec).poll_interval == 7.5
    assert open_location(spec, LocationOptions(poll_interval=0.5)).poll_interval == 0.5
    folder = open_location(f"folder:{tmp_path}")
    assert folder.poll_interval == kind_of(parse_spec(f"folder:{tmp_path}")).default_poll_interval
    bucket = parse_spec("s3://bucket/x?endpoint=http://127.0.0.1:9")
    assert open_location(bucket).poll_interval == 10.0, "S3 polls every 10 s unless told"
    for url in ("ftp://h/x?poll=5", "s3://bucket/x?endpoint=http://127.0.0.1:9&poll=5"):
        assert open_location(parse_spec(url)).poll_interval == 5.0, url
    zip_spec = parse_spec(f"zip:{tmp_path / 'a.zip'}")
    archive = open_location(zip_spec)
    archive.poll_interval = 0.25
    watcher = watcher_for(archive, queue.SimpleQueue().put)
    assert watcher.interval == 0.25  # type: ignore[attr-defined]


def test_ftp_test_connection_reports_what_it_found(ftp_server: ThreadedFtpServer) -> None:
    spec = parse_spec(f"ftp://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{ftp_server.port}/")
    test = kind_of(spec).test
    assert test is not None
    (ftp_server.root / "a.txt").write_text("a")
    report = test(spec, LocationOptions(connect_timeout=10.0))
    assert report == ConnectionReport(True, "Connected: 1 file found")
    wrong = parse_spec(f"ftp://{USER}:wrong@127.0.0.1:{ftp_server.port}/")
    with pytest.raises(AuthenticationFailed):
        test(wrong, LocationOptions(connect_timeout=10.0))


def test_the_s3_form_builds_the_spec_its_url_would_and_tests_the_bucket(
    moto_s3: S3Server,
) -> None:
    bucket = moto_s3.new_bucket()
    moto_s3.client().put_object(Bucket=bucket, Key="docs/a.txt", Body=b"a")
    kind = kind_of(parse_spec(moto_s3.url(bucket)))
    form = LocationForm(
        kind.name,
        bucket=bucket,
        prefix="/docs/",
        endpoint=moto_s3.endpoint,
        access_key=S3_KEY,
        secret=S3_SECRET,
    )
    spec = build_spec(form)
    assert spec == parse_spec(moto_s3.url(bucket, "docs"))
    assert kind.form.to_spec(kind.form.values(spec)) == spec
    assert kind.test is not None
    report = kind.test(spec, LocationOptions(connect_timeout=10.0))
    assert report == ConnectionReport(True, "Connected: 1 file found")
    with pytest.raises(FormError) as err:
        build_spec(LocationForm(kind.name, bucket="s3://b"))
    assert err.value.fields == {"bucket": "only the bucket's name: no s3://, key or folder"}
    with pytest.raises(FormError) as err:
        build_spec(LocationForm(kind.name, bucket="b", endpoint="ftp://x"))
    assert "endpoint must be an http" in err.value.fields["endpoint"]


def test_sftp_test_connection_shows_an_unknown_key_and_trusts_it_only_when_asked(
    sshd_server: SftpServer,
) -> None:
    sshd_server.known_hosts.write_text("")
    kind = kind_of(parse_spec(sshd_server.url()))
    form = LocationForm(
        kind.name,
        host=SSH_HOST,
        port=str(sshd_server.port),
        user=sshd_server.user,
        key=str(sshd_server.client_key),
        remote_path=str(sshd_server.root),
        known_hosts=str(sshd_server.known_hosts),
    )
    spec = build_spec(form)
    assert spec == parse_spec(sshd_server.url(key=str(sshd_server.client_key)))
    assert kind.form.to_spec(kind.form.values(spec)) == spec
    assert kind.test is not None
    report = kind.test(spec, LocationOptions(connect_timeout=10.0))
    assert not report.ok and "SHA256:" in report.message
    assert report.follow_up is not None and report.follow_up.label == "Trust this host"
    assert sshd_server.known_hosts.read_text() == ""  # nothing trusted before the click
    assert report.follow_up.run() == ConnectionReport(True, "Connected: 0 files found")
    assert str(sshd_server.port) in sshd_server.known_hosts.read_text()
    with pytest.raises(FormError) as err:
        build_spec(LocationForm(kind.name, host="h", user="me", key="/no/such/key"))
    assert err.value.fields == {"key": "no such file"}
