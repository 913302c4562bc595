"""The "Add location" dialog (tkinter/ttk): folder, ZIP archive or FTP server.

Invalid input is explained in red next to its field (the rules are in :mod:`app.ui.form`).
"Test connection" runs :meth:`SyncFacade.test_connection` in a worker thread whose reply is
put on a queue this dialog polls with ``after()`` — the worker never touches Tk. OK hands the
spec to ``on_submit`` (the app saves it and adds it to the running engine) and closes.
"""

from __future__ import annotations

import logging
import queue
import tkinter as tk
from collections.abc import Callable
from tkinter import filedialog, ttk

from app.locations.registry import KINDS, FormStyle, LocationKind, find_kind
from app.locations.spec import LocationSpec
from app.ui.form import FormError, InUse, LocationForm, build_spec

log = logging.getLogger(__name__)

ERROR_COLOUR = "#b3261e"
OK_COLOUR = "#1e7a34"
Tester = Callable[[LocationSpec, Callable[[bool, str], None]], None]


class AddLocationDialog:
    """One open dialog. Fields are Tk variables named like :class:`LocationForm`'s fields."""

    def __init__(
        self,
        root: tk.Misc,
        on_submit: Callable[[LocationSpec], None],
        tester: Tester,
        existing_keys: frozenset[str] = frozenset(),
        in_use: InUse | None = None,
    ) -> None:
        self.on_submit = on_submit
        self.tester = tester
        self.existing_keys = existing_keys
        self.in_use = in_use
        self.window = tk.Toplevel(root, name="add_location")
        self.window.title("Add location — FileSync")
        self.window.resizable(False, False)
        self.window.protocol("WM_DELETE_WINDOW", self.cancel)
        self.kind = tk.StringVar(self.window, value=LocationForm.kind)
        self.vars: dict[str, tk.StringVar] = {
            name: tk.StringVar(self.window, value=default)
            for name, default in (
                ("path", ""),
                ("host", ""),
                ("port", LocationForm.port),
                ("user", ""),
                ("password", ""),
                ("remote_path", "/"),
            )
        }
        self.tls = tk.BooleanVar(self.window, value=False)
        self.errors: dict[str, ttk.Label] = {}
        self.entries: dict[str, ttk.Entry] = {}
        self._replies: queue.SimpleQueue[tuple[bool, str]] = queue.SimpleQueue()
        self.testing = False
        self.closed = False
        self._build()
        self._on_kind()
        self.window.lift()

    def _build(self) -> None:
        outer = ttk.Frame(self.window, padding=12)
        outer.pack(fill="both", expand=True)
        kinds = ttk.Frame(outer)
        kinds.grid(row=0, column=0, columnspan=3, sticky="w", pady=(0, 8))
        ttk.Label(kinds, text="Kind:").pack(side="left", padx=(0, 8))
        for kind in KINDS:
            ttk.Radiobutton(
                kinds,
                name=f"kind_{kind.name}",
                text=kind.title,
                value=kind.name,
                variable=self.kind,
                command=self._on_kind,
            ).pack(side="left", padx=(0, 8))

        self.local = ttk.Frame(outer)
        self.local.grid(row=1, column=0, columnspan=3, sticky="we")
        self.path_label = ttk.Label(self.local, text="Folder:", width=12)
        self.path_label.grid(row=0, column=0, sticky="w")
        self._entry(self.local, "path", row=0, width=40)
        ttk.Button(self.local, name="browse", text="Browse…", command=self.browse).grid(
            row=0, column=2, padx=(6, 0)
        )
        self._error_label(self.local, "path", row=1)

        self.server = ttk.Frame(outer)
        self.server.grid(row=2, column=0, columnspan=3, sticky="we")
        for row, (name, text) in enumerate(
            (
                ("host", "Host:"),
                ("port", "Port:"),
                ("user", "User:"),
                ("password", "Password:"),
                ("remote_path", "Remote path:"),
            )
        ):
            ttk.Label(self.server, text=text, width=12).grid(row=row * 2, column=0, sticky="w")
            self._entry(
                self.server, name, row=row * 2, width=30, show="•" if name == "password" else ""
            )
            self._error_label(self.server, name, row=row * 2 + 1)
        self.tls_switch = ttk.Checkbutton(self.server, name="tls", text="", variable=self.tls)
        self.tls_switch.grid(row=10, column=1, sticky="w", pady=(2, 0))

        test_row = ttk.Frame(outer)
        test_row.grid(row=3, column=0, columnspan=3, sticky="we", pady=(10, 0))
        self.test_button = ttk.Button(
            test_row, name="test", text="Test connection", command=self.test_connection
        )
        self.test_button.pack(side="left")
        self.test_result = ttk.Label(test_row, name="test_result", text="", wraplength=360)
        self.test_result.pack(side="left", padx=8)
        self._error_label(outer, "kind", row=4)

        buttons = ttk.Frame(outer)
        buttons.grid(row=5, column=0, columnspan=3, sticky="e", pady=(12, 0))
        ttk.Button(buttons, name="cancel", text="Cancel", command=self.cancel).pack(
            side="right", padx=(6, 0)
        )
        self.ok_button = ttk.Button(
            buttons, name="ok", text="OK", command=self.ok, default="active"
        )
        self.ok_button.pack(side="right")
        self.window.bind("<Return>", lambda _e: self.ok())
        self.window.bind("<Escape>", lambda _e: self.cancel())

    def _entry(self, parent: ttk.Frame, name: str, row: int, width: int, show: str = "") -> None:
        entry = ttk.Entry(parent, name=name, textvariable=self.vars[name], width=width, show=show)
        entry.grid(row=row, column=1, sticky="we", pady=1)
        self.entries[name] = entry

    def _error_label(self, parent: tk.Misc, name: str, row: int) -> None:
        label = ttk.Label(
            parent, name=f"{name}_error", text="", foreground=ERROR_COLOUR, wraplength=360
        )
        label.grid(row=row, column=1, columnspan=2, sticky="w")
        self.errors[name] = label

    def _chosen(self) -> LocationKind:
        return find_kind(self.kind.get()) or KINDS[0]

    def _on_kind(self) -> None:
        kind = self._chosen()
        if kind.form.style is FormStyle.SERVER:
            self.local.grid_remove()
            self.server.grid()
            self.tls_switch.configure(text=kind.form.tls_label)
            self.entries["host"].focus_set()
        else:
            self.server.grid_remove()
            self.local.grid()
            self.path_label.configure(text=kind.form.what.capitalize() + ":")
            self.entries["path"].focus_set()
        self.show_errors({})
        self.test_result.configure(text="")

    def form(self) -> LocationForm:
        """The form as plain data."""
        values = {name: var.get() for name, var in self.vars.items()}
        return LocationForm(kind=self.kind.get(), tls=self.tls.get(), **values)

    def show_errors(self, errors: dict[str, str]) -> None:
        """Put each message next to its field and clear the others."""
        for name, label in self.errors.items():
            label.configure(text=errors.get(name, ""))

    def error_text(self, field: str) -> str:
        """The message shown next to ``field`` (``""`` when it is fine)."""
        return str(self.errors[field].cget("text"))

    def _spec(self) -> LocationSpec | None:
        try:
            spec = build_spec(self.form(), self.existing_keys, self.in_use)
        except FormError as exc:
            self.show_errors(exc.fields)
            return None
        self.show_errors({})
        return spec

    def browse(self) -> None:
        """Pick a folder, or a file of the kind's type (new or existing)."""
        current = self.vars["path"].get() or None
        form = self._chosen().form
        if form.style is FormStyle.FOLDER:
            chosen = filedialog.askdirectory(parent=self.window, initialdir=current, mustexist=True)
        else:
            chosen = filedialog.asksaveasfilename(
                parent=self.window,
                initialfile=current,
                defaultextension=form.suffix,
                filetypes=[(form.file_types, f"*{form.suffix}")],
                confirmoverwrite=False,
            )
        if chosen:
            self.vars["path"].set(chosen)

    def test_connection(self) -> None:
        """Check the location in the background; the answer appears beside the button."""
        spec = self._spec()
        if spec is None or self.testing:
            return
        self.testing = True
        self.test_button.state(["disabled"])
        self.test_result.configure(text="Testing…", foreground="")
        # The worker gets only the queue: if it held the dialog, the dialog's Tk variables
        # could be freed in the worker thread, which Tk forbids.
        replies = self._replies
        self.tester(spec, lambda ok, text: replies.put((ok, text)))
        self.window.after(100, self._poll_reply)

    def _poll_reply(self) -> None:
        if self.closed:
            return
        try:
            ok, text = self._replies.get_nowait()
        except queue.Empty:
            self.window.after(100, self._poll_reply)
            return
        self.testing = False
        self.test_button.state(["!disabled"])
        self.test_result.configure(text=text, foreground=OK_COLOUR if ok else ERROR_COLOUR)

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
            self.vars.clear()
            del self.kind, self.tls
