"""A kind that exists only in tests, with one field of every widget, to show that the dialog
and the form rules know no kind: whatever a kind declares is drawn, and its values become
its spec and back. Its locations are folders (``probe:/path?…``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import FormError
from app.locations import registry
from app.locations.base import Location, LocationKind
from app.locations.folder.location import FolderLocation
from app.locations.form.fields import (
    ConnectionReport,
    Field,
    FieldValue,
    FollowUp,
    FormLayout,
    FormStyle,
    FormValues,
    Widget,
    flag_of,
    text_of,
)
from app.locations.options import LocationOptions
from app.locations.spec import LocationSpec, local_spec

FIELDS = (
    Field("root", "Folder:", Widget.FOLDER, required=True),
    Field("nickname", "Nickname:", help="shown in the tray", required=True),
    Field("secret", "Secret:", Widget.PASSWORD),
    Field("port", "Port:", Widget.PORT, default="4000"),
    Field("mode", "Mode:", Widget.CHOICE, default="fast", choices=("fast", "careful")),
    Field("verbose", "Talk a lot", Widget.CHECKBOX, default=False),
    Field("key", "Key file:", Widget.FILE, suffix=".key", file_types="Keys"),
)
#: What the probe's "Test connection" has done, in order.
CALLS: list[str] = []


def to_spec(values: FormValues) -> LocationSpec:
    root = text_of(values, "root")
    if not root or not Path(root).is_dir():
        raise FormError({"root": "no such folder"})
    if not text_of(values, "port").isdigit():
        raise FormError({"port": "digits only"})
    texts = [(name, text_of(values, name)) for name in ("nickname", "port", "mode", "key")]
    options = (*texts, ("verbose", "yes" if flag_of(values, "verbose") else "no"))
    spec = local_spec("probe", f"probe:{root}", root)
    secret = values.get("secret", "")
    return spec.replace(options=options, password=secret if isinstance(secret, str) else "")


def to_values(spec: LocationSpec) -> dict[str, FieldValue]:
    values: dict[str, FieldValue] = {name: value for name, value in spec.options}
    values["verbose"] = spec.option("verbose") == "yes"
    return {**values, "root": spec.path, "secret": spec.password}


def from_spec(spec: LocationSpec, options: LocationOptions) -> Location:
    return FolderLocation.from_spec(spec, options)


def probe_test(spec: LocationSpec, options: LocationOptions) -> ConnectionReport:
    """Answers with a follow-up that, when run, reports again."""
    CALLS.append(f"test {spec.option('nickname')}")

    def trust() -> ConnectionReport:
        CALLS.append("trust")
        return ConnectionReport(True, "Trusted: probe is known now")

    return ConnectionReport(False, "Unknown probe SHA256:abc", FollowUp("Trust this probe", trust))


PROBE = LocationKind(
    name="probe",
    title="Probe",
    prefixes=("probe",),
    forms=("probe:/path",),
    parse=lambda text, prefix, rest: local_spec("probe", text, rest),
    from_spec=from_spec,
    form=FormLayout(FormStyle.FOLDER, FIELDS, to_spec, to_values),
    test=probe_test,
    default_poll_interval=7.5,
)


def register(monkeypatch: pytest.MonkeyPatch, kind: LocationKind = PROBE) -> None:
    """Add ``kind`` to the registry for one test (first, so the dialog starts with it)."""
    monkeypatch.setattr(registry, "KINDS", (kind, *registry.KINDS))
    monkeypatch.setitem(registry._BY_PREFIX, kind.name, kind)
    CALLS.clear()
