"""The add-location form as plain data, and the rules that turn it into a location spec.

Kept apart from :mod:`app.ui.dialog` so every rule is testable without a display. The rules
of each field are the kind's own (``LocationKind.form``, see
:mod:`app.locations.form.fields`); this module adds what holds for every kind: the location
must not be synced already nor overlap a synced one or FileSync's own files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.errors import FormError, LocationsOverlap, SpecError
from app.locations import open_location, registry
from app.locations.form.fields import FieldValue
from app.locations.overlap import check_new_location
from app.locations.registry import LocationKind, find_kind
from app.locations.spec import LocationSpec

__all__ = ["FormError", "InUse", "LocationForm", "build_spec", "form_kind"]


class LocationForm:
    """What the user chose: a kind's name and the values of that kind's fields.

    Fields left out have their default (``LocationForm(kind="ftp", host="h")``).
    """

    def __init__(self, kind: str = "", **values: FieldValue) -> None:
        self.kind = kind or registry.KINDS[0].name
        self.values: dict[str, FieldValue] = values

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.values.items() if k != "password"}
        return f"LocationForm(kind={self.kind!r}, {shown!r})"


@dataclass(frozen=True)
class InUse:
    """What a new location must not overlap: the synced locations and FileSync's own files."""

    locations: tuple[LocationSpec, ...] = ()
    state_dir: Path | None = None
    log_file: Path | None = None


def form_kind(name: str) -> LocationKind:
    """The kind a form names, or a FormError for the kind chooser."""
    kind = find_kind(name)
    if kind is None or kind.name != name:
        raise FormError({"kind": f"choose one of {', '.join(k.title for k in registry.KINDS)}"})
    return kind


def build_spec(
    form: LocationForm,
    existing_keys: frozenset[str] = frozenset(),
    in_use: InUse | None = None,
) -> LocationSpec:
    """Return the spec the form describes, or raise :class:`FormError` explaining each field.

    With ``in_use``, a location that would hold FileSync's own files or overlap a synced one
    (the same rules as the command line, :mod:`app.locations.overlap`) is refused too; such
    messages are shown at the kind's first field.
    """
    kind = form_kind(form.kind)
    values = {**kind.form.defaults(), **form.values}
    missing = {
        f.name: "required"
        for f in kind.form.fields
        if f.required and isinstance(values.get(f.name), str) and not str(values[f.name]).strip()
    }
    field = kind.form.fields[0].name
    try:
        spec = kind.form.to_spec(values)
    except FormError as exc:
        raise FormError({**missing, **exc.fields}) from exc
    except SpecError as exc:  # a rule of the spec's own, shown at the first field
        raise FormError({field: exc.message, **missing}) from exc
    if missing:
        raise FormError(missing)
    if spec.key in existing_keys:
        raise FormError({field: "this location is already synced"})
    if in_use is not None:
        try:
            check_new_location(
                open_location(spec),
                [open_location(s) for s in in_use.locations],
                in_use.state_dir,
                in_use.log_file,
            )
        except LocationsOverlap as exc:
            raise FormError({field: exc.message}) from exc
    return spec
