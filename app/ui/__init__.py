"""The desktop app: a tray icon, a status window and an add-location dialog over the engine.

See :mod:`app.ui.desktop` for the threading rules every module here follows.
"""
