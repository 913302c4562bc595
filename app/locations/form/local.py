"""Forms for kinds that live at a path on this computer: a folder, or a file such as a ZIP."""

from __future__ import annotations

import os
from pathlib import Path

from app.errors import FormError, SpecError
from app.locations.form.fields import (
    Field,
    FieldValue,
    FormLayout,
    FormStyle,
    FormValues,
    Widget,
    text_of,
)
from app.locations.spec import LocationSpec, local_spec

PATH = "path"


def folder_form(kind: str, what: str = "folder") -> FormLayout:
    """One field, ``path``: an existing folder (Browse picks a folder)."""

    def to_spec(values: FormValues) -> LocationSpec:
        path = _absolute(values, what)
        if not path.exists():
            raise FormError({PATH: "this folder does not exist; create it first"})
        if not path.is_dir():
            raise FormError({PATH: "this is a file, not a folder"})
        return _spec(kind, path)

    field = Field(PATH, what.capitalize() + ":", Widget.FOLDER, required=True)
    return FormLayout(FormStyle.FOLDER, (field,), to_spec, _values)


def file_form(kind: str, title: str, what: str, suffix: str, file_types: str) -> FormLayout:
    """One field, ``path``: a file ending in ``suffix`` that may not exist yet.

    ``title`` is the kind's name (``ZIP archive``) and ``what`` the file's (``ZIP file``).
    """

    def to_spec(values: FormValues) -> LocationSpec:
        path = _absolute(values, what)
        if suffix and path.suffix.lower() != suffix:
            raise FormError({PATH: f"a {title}'s name ends in {suffix}"})
        if path.exists() and not path.is_file():
            raise FormError({PATH: f"this is a folder, not a {suffix} file"})
        if not path.parent.is_dir():
            raise FormError({PATH: f"the folder {path.parent} does not exist"})
        return _spec(kind, path)

    field = Field(
        PATH,
        what.capitalize() + ":",
        Widget.FILE,
        required=True,
        suffix=suffix,
        file_types=file_types,
        new_file=True,
    )
    return FormLayout(FormStyle.FILE, (field,), to_spec, _values, suffix=suffix)


def _absolute(values: FormValues, what: str) -> Path:
    raw = text_of(values, PATH)
    if not raw:
        raise FormError({PATH: f"choose a {what} (Browse…)"})
    path = Path(os.path.expanduser(raw))
    if not path.is_absolute():
        raise FormError({PATH: "use a full path, starting at the root of a drive"})
    return path


def _spec(kind: str, path: Path) -> LocationSpec:
    try:
        return local_spec(kind, f"{kind}:{path}", str(path))
    except SpecError as exc:
        raise FormError({PATH: exc.message}) from exc


def _values(spec: LocationSpec) -> dict[str, FieldValue]:
    return {PATH: spec.path}
