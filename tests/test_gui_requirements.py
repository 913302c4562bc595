"""The GUI tests are never skipped silently in CI: missing X tools fail there, skip elsewhere."""

from __future__ import annotations

import pytest

from tests.gui import xserver


def test_missing_xvfb_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xserver.shutil, "which", lambda tool: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Xvfb"):
        xserver.require_tools()


def test_missing_xvfb_skips_on_a_developer_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xserver.shutil, "which", lambda tool: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install"):
        xserver.require_tools()
