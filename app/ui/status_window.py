"""The status window: every location's state, last sync, pending files and last error, the
recent activity, and the same actions as the tray menu.

On tray backends without a menu (plain X) a click on the icon opens this window, so every
action stays reachable. It lives in the Tk thread; its buttons post the same
:class:`~app.ui.commands.UiCommand` values as the menu. Closing it only hides it.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk

from app.engine.status import Activity, EngineStatus
from app.ui.commands import Action, CommandQueue
from app.ui.summary import STATE_WORDS, activity_line, clock, short_name, shorten_names, tooltip

COLUMNS = (
    ("state", "State", 90),
    ("last_sync", "Last sync", 110),
    ("pending", "Pending", 70),
    ("error", "Last error", 260),
)
ACTIVITY_ROWS = 12


class StatusWindow:
    """A Toplevel built once and shown or hidden; :meth:`show_status` refreshes it."""

    def __init__(self, root: tk.Tk, commands: CommandQueue) -> None:
        self.commands = commands
        self.window = tk.Toplevel(root, name="status")
        self.window.title("FileSync")
        self.window.minsize(640, 420)
        self.window.protocol("WM_DELETE_WINDOW", self.hide)
        self.autostart = tk.BooleanVar(self.window, value=False)
        self._status = EngineStatus()
        self._activity_count = -1
        self._last: Activity | None = None
        self._build()
        self.window.withdraw()

    def _build(self) -> None:
        frame = ttk.Frame(self.window, padding=10)
        frame.pack(fill="both", expand=True)
        self.summary = ttk.Label(frame, name="summary", font=("TkDefaultFont", 11, "bold"))
        self.summary.pack(anchor="w", pady=(0, 8))

        self.tree = ttk.Treeview(
            frame, name="locations", columns=[c[0] for c in COLUMNS], height=5, selectmode="browse"
        )
        self.tree.heading("#0", text="Location")
        self.tree.column("#0", width=260, stretch=True)
        for name, title, width in COLUMNS:
            self.tree.heading(name, text=title)
            self.tree.column(name, width=width, stretch=name == "error")
        self.tree.pack(fill="x")

        row = ttk.Frame(frame)
        row.pack(fill="x", pady=(4, 8))
        self.open_button = ttk.Button(row, name="open", text="Open", command=self._open)
        self.open_button.pack(side="left")
        self.remove_button = ttk.Button(row, name="remove", text="Remove", command=self._remove)
        self.remove_button.pack(side="left", padx=4)

        ttk.Label(frame, text="Recent activity").pack(anchor="w")
        self.activity = tk.Listbox(frame, name="activity", height=ACTIVITY_ROWS, activestyle="none")
        self.activity.pack(fill="both", expand=True)

        actions = ttk.Frame(frame)
        actions.pack(fill="x", pady=(8, 0))
        self.buttons: dict[Action, ttk.Button] = {}
        for action, text in (
            (Action.SYNC_NOW, "Sync now"),
            (Action.TOGGLE_PAUSE, "Pause"),
            (Action.ADD_LOCATION, "Add location…"),
            (Action.OPEN_DASHBOARD, "Dashboard"),
            (Action.OPEN_LOG, "Open log"),
        ):
            button = ttk.Button(
                actions,
                name=action.name.lower(),
                text=text,
                command=lambda a=action: self.commands.post(a),  # type: ignore[misc]
            )
            button.pack(side="left", padx=(0, 4))
            self.buttons[action] = button
        self.autostart_check = ttk.Checkbutton(
            actions,
            name="autostart",
            text="Start at login",
            variable=self.autostart,
            command=lambda: self.commands.post(Action.TOGGLE_AUTOSTART),
        )
        self.autostart_check.pack(side="left", padx=8)
        quit_button = ttk.Button(
            actions, name="quit", text="Quit", command=lambda: self.commands.post(Action.QUIT)
        )
        quit_button.pack(side="right")
        self.buttons[Action.QUIT] = quit_button

    def show(self) -> None:
        """Bring the window up, in front."""
        self.window.deiconify()
        self.window.lift()

    def hide(self) -> None:
        """Hide the window; FileSync keeps running in the tray."""
        self.window.withdraw()

    @property
    def visible(self) -> bool:
        """True when the window is mapped."""
        return bool(self.window.winfo_ismapped())

    def selected_key(self) -> str:
        """The key of the selected location row, or ``""``."""
        selection = self.tree.selection()
        return str(selection[0]) if selection else ""

    def _open(self) -> None:
        key = self.selected_key()
        if key:
            self.commands.post(Action.OPEN_LOCATION, key)

    def _remove(self) -> None:
        key = self.selected_key()
        if key:
            self.commands.post(Action.REMOVE_LOCATION, key)

    def show_status(self, status: EngineStatus, autostart: bool) -> None:
        """Refresh every row from a snapshot (rows are keyed by location key)."""
        self._status = status
        self.summary.configure(text=tooltip(status))
        self.buttons[Action.TOGGLE_PAUSE].configure(text="Resume" if status.paused else "Pause")
        if self.autostart.get() != autostart:
            self.autostart.set(autostart)
        keys = [loc.key for loc in status.locations]
        for stale in set(self.tree.get_children()) - set(keys):
            self.tree.delete(stale)
        for index, loc in enumerate(status.locations):
            values = (
                STATE_WORDS[loc.state],
                clock(loc.last_sync),
                str(loc.pending),
                shorten_names(loc.last_error, loc.name) or "—",
            )
            name = short_name(loc.name)
            if self.tree.exists(loc.key):
                self.tree.item(loc.key, text=name, values=values)
                self.tree.move(loc.key, "", index)
            else:
                self.tree.insert("", index, iid=loc.key, text=name, values=values)
        if keys and not self.selected_key():
            self.tree.selection_set(keys[0])
        self._show_activity(status)

    def _show_activity(self, status: EngineStatus) -> None:
        recent = status.activity[-200:]
        if len(recent) == self._activity_count and (not recent or self._last == recent[-1]):
            return
        self._activity_count = len(recent)
        self._last = recent[-1] if recent else None
        self.activity.delete(0, "end")
        for activity in reversed(recent):
            self.activity.insert("end", activity_line(activity))
            if activity.action in ("error", "conflict", "held"):
                self.activity.itemconfigure("end", foreground="#b3261e")

    def destroy(self) -> None:
        """Destroy the window and drop its Tk variable in the Tk thread (see the dialog)."""
        self.window.destroy()
        del self.autostart

    def row(self, key: str) -> dict[str, str]:
        """The texts of one location row, by column name (used by tests and screenshots)."""
        values = self.tree.item(key, "values")
        out = {"name": str(self.tree.item(key, "text"))}
        out.update({c[0]: str(v) for c, v in zip(COLUMNS, values, strict=True)})
        return out
