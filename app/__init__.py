"""FileSync: keeps folders, ZIP archives and FTP servers mirrored in real time."""

from __future__ import annotations

__version__ = "0.1.0"
