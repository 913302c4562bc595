"""The add-location dialog draws whatever fields a kind declares: a kind registered only in
this test, with one field of every widget, is filled in with the real pointer and keyboard,
tested (its follow-up button clicked) and added, with no line of app/ui naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.locations.registry import parse_spec
from tests import probe_kind
from tests.gui import test_windows as ui
from tests.gui.conftest import GTK_DEPRECATIONS, Desktop

pytestmark = [pytest.mark.gui, *GTK_DEPRECATIONS]


def test_a_kind_with_its_own_fields_is_drawn_tested_and_added(
    start_app, desktop: Desktop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe_kind.register(monkeypatch)
    root = tmp_path / "probed"
    root.mkdir()
    harness = start_app("xorg")
    dialog = harness.app.dialog
    assert dialog is not None
    harness.wait(dialog.window.winfo_ismapped, "the dialog")
    assert dialog.kind.get() == "probe"
    assert set(dialog.entries) == {f.name for f in probe_kind.FIELDS}
    assert dialog.entries["secret"].cget("show") == "•"
    assert dialog.entries["port"].get() == "4000"  # type: ignore[attr-defined]
    assert dialog.test_button.winfo_ismapped()

    ui.click(desktop, harness, dialog.ok_button)
    assert dialog.error_text("root") == "no such folder"
    assert dialog.error_text("nickname") == "required"
    ui.type_into(desktop, harness, dialog.entries["root"], str(root))
    ui.type_into(desktop, harness, dialog.entries["nickname"], "nas")
    ui.type_into(desktop, harness, dialog.entries["secret"], "s3cr3t")
    ui.click(desktop, harness, dialog.entries["verbose"])
    dialog.entries["mode"].set("careful")  # type: ignore[attr-defined]

    ui.click(desktop, harness, dialog.test_button)
    harness.wait(lambda: not dialog.testing, "the test")
    assert dialog.test_result.cget("text") == "Unknown probe SHA256:abc"
    assert str(dialog.test_result.cget("foreground")) == "#b3261e"
    harness.wait(dialog.follow_up_button.winfo_ismapped, "the follow-up button")
    assert dialog.follow_up_button.cget("text") == "Trust this probe"
    ui.click(desktop, harness, dialog.follow_up_button)
    harness.wait(lambda: not dialog.testing, "the follow-up")
    assert dialog.test_result.cget("text") == "Trusted: probe is known now"
    assert not dialog.follow_up_button.winfo_ismapped()
    assert probe_kind.CALLS == ["test nas", "trust"]

    ui.click(desktop, harness, dialog.window.nametowidget("!frame.!frame.kind_folder"))
    harness.wait(lambda: not dialog.test_button.winfo_ismapped(), "no test for a folder")
    ui.click(desktop, harness, dialog.window.nametowidget("!frame.!frame.kind_probe"))
    harness.wait(dialog.test_button.winfo_ismapped, "the probe's test again")
    ui.click(desktop, harness, dialog.ok_button)
    assert dialog.closed, {f.name: dialog.error_text(f.name) for f in probe_kind.FIELDS}
    spec = harness.app.config.locations[-1]
    assert (spec.kind, spec.path, spec.password) == ("probe", str(root), "s3cr3t")
    assert dict(spec.options) == {
        "nickname": "nas",
        "port": "4000",
        "mode": "careful",
        "key": "",
        "verbose": "yes",
    }
    assert parse_spec(f"probe:{root}").key == spec.key
