"""The dashboard's secrets and address on disk, in the state folder.

``api-token`` (mode 0600) is made on the first start and kept, so a bookmark or a script keeps
working across restarts; ``dashboard.json`` says where a running instance listens, so
``filesync status`` and ``filesync dashboard`` can find it. Neither is ever logged.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from app.errors import FileSyncError

TOKEN_FILE = "api-token"
ADDRESS_FILE = "dashboard.json"


def load_or_create_token(state_dir: Path) -> str:
    """The API token of this state folder, created (mode 0600) on first use."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(state_dir)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    return token


def read_token(state_dir: Path) -> str:
    """The token kept in ``state_dir``; its mode is narrowed to 0600 if someone widened it."""
    path = state_dir / TOKEN_FILE
    try:
        token = path.read_text(encoding="ascii").strip()
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except (OSError, UnicodeDecodeError) as exc:
        raise FileSyncError(f"cannot read the dashboard token {path}: {exc}") from None
    if len(token) < 16:
        raise FileSyncError(f"the dashboard token in {path} is too short; delete the file")
    return token


@dataclass(frozen=True)
class Address:
    """Where a running instance serves: its base URL and, with TLS, the certificate file."""

    url: str
    cert: str = ""


def write_address(state_dir: Path, address: Address) -> None:
    """Record the running instance's address (replaced atomically)."""
    path = state_dir / ADDRESS_FILE
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps({"url": address.url, "cert": address.cert}), encoding="utf-8")
    temp.replace(path)


def read_address(state_dir: Path) -> Address | None:
    """The address a running (or crashed) instance recorded, or None."""
    try:
        data = json.loads((state_dir / ADDRESS_FILE).read_text(encoding="utf-8"))
        return Address(str(data["url"]), str(data.get("cert", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget_address(state_dir: Path, address: Address) -> None:
    """Remove the address file if it is still ours (another instance may have replaced it)."""
    if read_address(state_dir) == address:
        (state_dir / ADDRESS_FILE).unlink(missing_ok=True)
