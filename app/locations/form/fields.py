"""What a kind declares for the add-location dialog: its fields and its "Test connection".

The dialog (:mod:`app.ui.dialog`) draws whatever fields a kind lists and hands the values to
the kind's ``to_spec``; it knows no kind and no field by name. A new kind (an SFTP server, an
S3 bucket) therefore needs no change in ``app/ui``: it lists its :class:`Field` s, turns their
values into a :class:`~app.locations.spec.LocationSpec` and, if it can check a connection,
offers a test that answers with a :class:`ConnectionReport`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from app.locations.spec import LocationSpec

#: A field's value: text for every widget but a checkbox, which gives a bool.
FieldValue = str | bool
#: The values of a kind's fields, by field name.
FormValues = Mapping[str, FieldValue]


class Widget(enum.Enum):
    """How the dialog shows one field."""

    #: One line of text.
    TEXT = "text"
    #: One line of text shown as dots; never logged.
    PASSWORD = "password"
    #: A TCP port (text; the kind checks it, see :func:`app.locations.form.server.port_of`).
    PORT = "port"
    #: A path to a folder on this computer, with a Browse button that picks a folder.
    FOLDER = "folder"
    #: A path to a file on this computer, with a Browse button that picks a file.
    FILE = "file"
    #: A switch; its value is a bool.
    CHECKBOX = "checkbox"
    #: One of :attr:`Field.choices`, picked from a list.
    CHOICE = "choice"


class Field:
    """One field of a kind's form.

    ``name`` keys the value in :data:`FormValues` and the message of a :class:`FormError`;
    ``label`` is what the dialog writes beside it (a checkbox's text). ``default`` fills a new
    form (a bool for a checkbox). ``required`` marks the label; the kind's ``to_spec`` still
    says what is missing. ``help`` is one short line shown under the field. ``choices`` are a
    CHOICE field's values. A FILE field's Browse offers names ending in ``suffix`` under the
    filter name ``file_types``; with ``new_file`` it may name a file that does not exist yet.

    Immutable: every form of a kind shares its fields. A plain slotted class rather than a
    dataclass, for the reason :class:`~app.locations.spec.LocationSpec` is one.
    """

    __slots__ = (
        "choices",
        "default",
        "file_types",
        "help",
        "label",
        "name",
        "new_file",
        "required",
        "suffix",
        "widget",
    )

    name: str
    label: str
    widget: Widget
    default: FieldValue
    required: bool
    help: str
    choices: tuple[str, ...]
    suffix: str
    file_types: str
    new_file: bool

    def __init__(  # noqa: PLR0917 - its fields in order, as callers pass them
        self,
        name: str,
        label: str,
        widget: Widget = Widget.TEXT,
        default: FieldValue = "",
        required: bool = False,
        help: str = "",
        choices: tuple[str, ...] = (),
        suffix: str = "",
        file_types: str = "",
        new_file: bool = False,
    ) -> None:
        if (widget is Widget.CHECKBOX) != isinstance(default, bool):
            raise TypeError(f"field {name}: a checkbox, and only a checkbox, has a bool")
        if widget is Widget.CHOICE and default not in choices:
            raise ValueError(f"field {name}: default {default!r} is not a choice")
        init = object.__setattr__
        init(self, "name", name)
        init(self, "label", label)
        init(self, "widget", widget)
        init(self, "default", default)
        init(self, "required", required)
        init(self, "help", help)
        init(self, "choices", choices)
        init(self, "suffix", suffix)
        init(self, "file_types", file_types)
        init(self, "new_file", new_file)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Field is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a Field is immutable: cannot delete {name!r}")


def text_of(values: FormValues, name: str) -> str:
    """A text field's value, stripped (``""`` when missing)."""
    value = values.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def flag_of(values: FormValues, name: str) -> bool:
    """A checkbox's value (False when missing)."""
    return values.get(name) is True


class FollowUp(NamedTuple):
    """An action a test offers after its report, shown as a button (``Trust this host``).

    ``run`` does it and tests again; it may block on the network, so the dialog calls it
    in a worker thread, like the test itself.
    """

    label: str
    run: Callable[[], ConnectionReport]


class ConnectionReport(NamedTuple):
    """What "Test connection" found: ``ok`` or not, one line for the user, maybe a follow-up."""

    ok: bool
    message: str
    follow_up: FollowUp | None = None


class FormStyle(enum.Enum):
    """Where a kind's locations live: what the settings file, "Open" and hints need to know.

    The dialog does not look at it; it draws the kind's :attr:`FormLayout.fields`.
    """

    #: A folder on this computer (``kind:/path``).
    FOLDER = "folder-path"
    #: A file on this computer that may not exist yet, with the kind's suffix.
    FILE = "file-path"
    #: A server: host, port, user, password, remote path.
    SERVER = "server"


class FormLayout(NamedTuple):
    """How the add-location dialog asks for a location of one kind, and where it lives.

    ``fields`` are drawn in order; ``to_spec(values)`` builds the spec from their values or
    raises :class:`~app.errors.FormError` naming the fields that are wrong, and
    ``values(spec)`` is the way back (a form filled from an existing location; no password
    is lost). The first field is where "already synced" and overlap messages are shown.
    ``suffix`` is a file kind's required name ending (also used for hints).
    """

    style: FormStyle
    fields: tuple[Field, ...]
    to_spec: Callable[[FormValues], LocationSpec]
    values: Callable[[LocationSpec], dict[str, FieldValue]]
    suffix: str = ""

    def defaults(self) -> dict[str, FieldValue]:
        """The values of a new, empty form."""
        return {f.name: f.default for f in self.fields}
