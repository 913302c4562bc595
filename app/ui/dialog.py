"""The "Add location" dialog (tkinter/ttk), drawn from each kind's declared fields.

The dialog knows no kind and no field by name: for every registered kind it draws the fields
the kind lists (``LocationKind.form``, see :mod:`app.locations.form.fields`) and hands their
values to :func:`app.ui.form.build_spec`; invalid input is explained in red next to its
field. "Test connection" is shown for a kind that has a test; it runs in a worker thread (the
facade's) whose report is put on a queue this dialog polls with ``after()`` — the worker never
touches Tk. A report may offer a follow-up (``Trust this host``), shown as a second button
that runs the same way. OK hands the spec to ``on_submit`` (the app saves it and adds it to
the running engine) and closes.
"""

from __future__ import annotations

import logging
import queue
import tkinter as tk
from collections.abc import Callable
from tkinter import filedialog, ttk
from typing import Protocol

from app.locations import registry
from app.locations.form.fields import ConnectionReport, Field, FieldValue, FollowUp, Widget
from app.locations.registry import LocationKind, find_kind
from app.locations.spec import LocationSpec
from app.ui.form import FormError, InUse, LocationForm, build_spec

log = logging.getLogger(__name__)

ERROR_COLOUR = "#b3261e"
OK_COLOUR = "#1e7a34"
HELP_COLOUR = "#5f6368"
Reply = Callable[[ConnectionReport], None]


class Checks(Protocol):
    """Runs a kind's test and its follow-ups off the Tk thread (the facade does)."""

    def test_connection(self, spec: LocationSpec, reply: Reply) -> None: ...
    def follow_up(self, action: FollowUp, reply: Reply) -> None: ...


class _KindFields:
    """One kind's fields: their frame, Tk variables, input widgets and error labels."""

    def __init__(self, frame: ttk.Frame) -> None:
        self.frame = frame
        self.vars: dict[str, tk.StringVar | tk.BooleanVar] = {}
        self.inputs: dict[str, ttk.Widget] = {}
        self.errors: dict[str, ttk.Label] = {}
        self.first: ttk.Widget | None = None


class AddLocationDialog:
    """One open dialog: a kind chooser, the chosen kind's fields, Test connection, OK."""

    def __init__(
        self,
        root: tk.Misc,
        on_submit: Callable[[LocationSpec], None],
        checks: Checks,
        existing_keys: frozenset[str] = frozenset(),
        in_use: InUse | None = None,
    ) -> None:
        self.on_submit = on_submit
        self.checks = checks
        self.existing_keys = existing_keys
        self.in_use = in_use
        self.window = tk.Toplevel(root, name="add_location")
        self.window.title("Add location — FileSync")
        self.window.resizable(False, False)
        self.window.protocol("WM_DELETE_WINDOW", self.cancel)
        self.kind = tk.StringVar(self.window, value=registry.KINDS[0].name)
        self._kinds: dict[str, _KindFields] = {}
        self._kind_error: ttk.Label | None = None
        self._replies: queue.SimpleQueue[ConnectionReport] = queue.SimpleQueue()
        self._follow_up: FollowUp | None = None
        self.testing = False
        self.closed = False
        self._build()
        self._on_kind()
        self.window.lift()

    def _build(self) -> None:
        outer = ttk.Frame(self.window, padding=12)
        outer.pack(fill="both", expand=True)
        chooser = ttk.Frame(outer)
        chooser.grid(row=0, column=0, columnspan=3, sticky="w", pady=(0, 8))
        ttk.Label(chooser, text="Kind:").pack(side="left", padx=(0, 8))
        for kind in registry.KINDS:
            ttk.Radiobutton(
                chooser,
                name=f"kind_{kind.name}",
                text=kind.title,
                value=kind.name,
                variable=self.kind,
                command=self._on_kind,
            ).pack(side="left", padx=(0, 8))
        for kind in registry.KINDS:
            self._kinds[kind.name] = self._fields(outer, kind)

        test_row = ttk.Frame(outer)
        test_row.grid(row=2, column=0, columnspan=3, sticky="we", pady=(10, 0))
        self.test_row = test_row
        self.test_button = ttk.Button(
            test_row, name="test", text="Test connection", command=self.test_connection
        )
        self.test_button.pack(side="left")
        self.follow_up_button = ttk.Button(test_row, name="follow_up", command=self.follow_up)
        self.test_result = ttk.Label(test_row, name="test_result", text="", wraplength=360)
        self.test_result.pack(side="left", padx=8)
        self._kind_error = self._error_label(outer, "kind", row=3)

        buttons = ttk.Frame(outer)
        buttons.grid(row=4, column=0, columnspan=3, sticky="e", pady=(12, 0))
        ttk.Button(buttons, name="cancel", text="Cancel", command=self.cancel).pack(
            side="right", padx=(6, 0)
        )
        self.ok_button = ttk.Button(
            buttons, name="ok", text="OK", command=self.ok, default="active"
        )
        self.ok_button.pack(side="right")
        self.window.bind("<Return>", lambda _e: self.ok())
        self.window.bind("<Escape>", lambda _e: self.cancel())

    def _fields(self, outer: ttk.Frame, kind: LocationKind) -> _KindFields:
        """Draw one kind's fields in their own frame (shown while the kind is chosen)."""
        fields = _KindFields(ttk.Frame(outer, name=f"fields_{kind.name}"))
        fields.frame.grid(row=1, column=0, columnspan=3, sticky="we")
        row = 0
        for field in kind.form.fields:
            widget = self._input(fields, field, row)
            fields.inputs[field.name] = widget
            fields.first = fields.first or widget
            row += 1
            if field.help:
                ttk.Label(
                    fields.frame, text=field.help, foreground=HELP_COLOUR, wraplength=360
                ).grid(row=row, column=1, columnspan=2, sticky="w")
                row += 1
            fields.errors[field.name] = self._error_label(fields.frame, field.name, row)
            row += 1
        fields.frame.grid_remove()
        return fields

    def _input(self, fields: _KindFields, field: Field, row: int) -> ttk.Widget:
        parent = fields.frame
        if field.widget is Widget.CHECKBOX:
            flag = tk.BooleanVar(self.window, value=bool(field.default))
            fields.vars[field.name] = flag
            box = ttk.Checkbutton(parent, name=field.name, text=field.label, variable=flag)
            box.grid(row=row, column=1, sticky="w", pady=(2, 0))
            return box
        text = tk.StringVar(self.window, value=str(field.default))
        fields.vars[field.name] = text
        ttk.Label(parent, text=field.label, width=12).grid(row=row, column=0, sticky="w")
        widget: ttk.Widget
        if field.widget is Widget.CHOICE:
            widget = ttk.Combobox(
                parent, name=field.name, textvariable=text, values=field.choices, state="readonly"
            )
        else:
            show = "•" if field.widget is Widget.PASSWORD else ""
            width = 8 if field.widget is Widget.PORT else 40 if _is_path(field) else 30
            widget = ttk.Entry(parent, name=field.name, textvariable=text, width=width, show=show)
        widget.grid(row=row, column=1, sticky="w" if field.widget is Widget.PORT else "we", pady=1)
        if _is_path(field):
            ttk.Button(
                parent,
                name=f"{field.name}_browse",
                text="Browse…",
                command=lambda: self.browse(field),
            ).grid(row=row, column=2, padx=(6, 0))
        return widget

    def _error_label(self, parent: tk.Misc, name: str, row: int) -> ttk.Label:
        label = ttk.Label(
            parent, name=f"{name}_error", text="", foreground=ERROR_COLOUR, wraplength=360
        )
        label.grid(row=row, column=1, columnspan=2, sticky="w")
        return label

    def _chosen(self) -> LocationKind:
        return find_kind(self.kind.get()) or registry.KINDS[0]

    @property
    def entries(self) -> dict[str, ttk.Widget]:
        """The chosen kind's input widgets, by field name."""
        return self._kinds[self._chosen().name].inputs

    def _on_kind(self) -> None:
        kind = self._chosen()
        for name, fields in self._kinds.items():
            if name == kind.name:
                fields.frame.grid()
            else:
                fields.frame.grid_remove()
        first = self._kinds[kind.name].first
        if first is not None:
            first.focus_set()
        if kind.test is None:
            self.test_row.grid_remove()
        else:
            self.test_row.grid()
        self.show_errors({})
        self._show_report(None)

    def form(self) -> LocationForm:
        """The chosen kind's form as plain data."""
        fields = self._kinds[self._chosen().name]
        values: dict[str, FieldValue] = {name: var.get() for name, var in fields.vars.items()}
        return LocationForm(self.kind.get(), **values)

    def show_errors(self, errors: dict[str, str]) -> None:
        """Put each message next to its field and clear the others."""
        for name, label in self._labels().items():
            label.configure(text=errors.get(name, ""))

    def error_text(self, field: str) -> str:
        """The message shown next to ``field`` of the chosen kind (``""`` when it is fine)."""
        return str(self._labels()[field].cget("text"))

    def _labels(self) -> dict[str, ttk.Label]:
        labels = dict(self._kinds[self._chosen().name].errors)
        if self._kind_error is not None:
            labels["kind"] = self._kind_error
        return labels

    def _spec(self) -> LocationSpec | None:
        try:
            spec = build_spec(self.form(), self.existing_keys, self.in_use)
        except FormError as exc:
            self.show_errors(exc.fields)
            return None
        self.show_errors({})
        return spec

    def browse(self, field: Field) -> None:
        """Pick a folder, or a file of the field's type (a new one if the field allows it)."""
        var = self._kinds[self._chosen().name].vars[field.name]
        if not isinstance(var, tk.StringVar):
            return
        current = var.get() or None
        chosen: str
        if field.widget is Widget.FOLDER:
            chosen = filedialog.askdirectory(parent=self.window, initialdir=current, mustexist=True)
        else:
            types = [(field.file_types, f"*{field.suffix}")] if field.suffix else []
            if field.new_file:
                chosen = filedialog.asksaveasfilename(
                    parent=self.window,
                    initialfile=current,
                    defaultextension=field.suffix,
                    filetypes=types,
                    confirmoverwrite=False,
                )
            else:
                chosen = filedialog.askopenfilename(
                    parent=self.window, initialfile=current, filetypes=types
                )
        if chosen:
            var.set(chosen)

    def test_connection(self) -> None:
        """Run the kind's test in the background; the report appears beside the button."""
        spec = self._spec()
        if spec is None or self.testing:
            return
        # The worker gets only the queue: if it held the dialog, the dialog's Tk variables
        # could be freed in the worker thread, which Tk forbids.
        replies = self._replies
        self._start_check()
        self.checks.test_connection(spec, replies.put)

    def follow_up(self) -> None:
        """Run the follow-up the last report offered (``Trust this host``), then show its report."""
        action = self._follow_up
        if action is None or self.testing:
            return
        replies = self._replies
        self._start_check()
        self.checks.follow_up(action, replies.put)

    def _start_check(self) -> None:
        self.testing = True
        self.test_button.state(["disabled"])
        self._show_report(None)
        self.test_result.configure(text="Testing…", foreground="")
        self.window.after(100, self._poll_reply)

    def _poll_reply(self) -> None:
        if self.closed:
            return
        try:
            report = self._replies.get_nowait()
        except queue.Empty:
            self.window.after(100, self._poll_reply)
            return
        self.testing = False
        self.test_button.state(["!disabled"])
        self._show_report(report)

    def _show_report(self, report: ConnectionReport | None) -> None:
        self._follow_up = report.follow_up if report is not None else None
        if report is None:
            self.test_result.configure(text="")
        else:
            colour = OK_COLOUR if report.ok else ERROR_COLOUR
            self.test_result.configure(text=report.message, foreground=colour)
        if self._follow_up is None:
            self.follow_up_button.pack_forget()
        else:
            self.follow_up_button.configure(text=self._follow_up.label)
            self.follow_up_button.pack(side="left", padx=(8, 0), before=self.test_result)

    def ok(self) -> None:
        """Validate; on success hand the spec over and close, else explain next to the fields."""
        spec = self._spec()
        if spec is None:
            return
        log.info("adding location %s", spec.redacted)
        self.close()
        self.on_submit(spec)

    def cancel(self) -> None:
        """Close without adding anything."""
        self.close()

    def close(self) -> None:
        """Destroy the window (a running test's reply is then ignored)."""
        if not self.closed:
            self.closed = True
            self.window.destroy()
            # Drop the Tk variables here, in the Tk thread. Left to the garbage collector
            # (widgets form reference cycles) they could be freed in any thread, and a Tk
            # variable freed outside the Tk thread raises.
            for fields in self._kinds.values():
                fields.vars.clear()
            del self.kind


def _is_path(field: Field) -> bool:
    return field.widget in (Widget.FOLDER, Widget.FILE)
