"""``filesync status`` and ``filesync dashboard``: talk to the instance running for a state
folder, found through the address and token it keeps there (:mod:`app.web.access`).
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path
from typing import Any
from urllib.parse import quote

from app.errors import FileSyncError
from app.web.access import Address, read_address, read_token

TIMEOUT = 10.0


class NotRunning(FileSyncError):
    """No instance with a dashboard answers for this state folder."""


def _context(address: Address) -> ssl.SSLContext | None:
    if not address.url.startswith("https:"):
        return None
    # The instance's own certificate, read from its state folder, is the one to trust.
    context = ssl.create_default_context(cafile=address.cert or None)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a leaf certificate is enough
    return context


def find(state_dir: Path) -> tuple[Address, str]:
    """The running instance's address and token, or :class:`NotRunning`."""
    address = read_address(state_dir)
    if address is None:
        raise NotRunning(
            f"no FileSync with a dashboard is running for {state_dir} "
            "(start one with: filesync run --web …, or the desktop app)"
        )
    return address, read_token(state_dir)


def get_json(state_dir: Path, path: str) -> Any:
    """``GET`` an API path from the running instance."""
    address, token = find(state_dir)
    request = urllib.request.Request(
        address.url.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=_context(address)) as r:
            return json.load(r)
    except urllib.error.HTTPError as exc:
        raise FileSyncError(f"the dashboard at {address.url} answered {exc.code}") from None
    except ssl.SSLError as exc:
        raise FileSyncError(f"the dashboard at {address.url}: TLS failed: {exc}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            raise FileSyncError(f"the dashboard at {address.url}: {exc.reason}") from None
        raise NotRunning(
            f"no FileSync is running for {state_dir} (nothing answers at {address.url})"
        ) from exc
    except OSError as exc:
        raise NotRunning(
            f"no FileSync is running for {state_dir} (nothing answers at {address.url})"
        ) from exc


def when(timestamp: float | None) -> str:
    """A time as the status lines show it."""
    if timestamp is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def status_lines(status: dict[str, Any]) -> list[str]:
    """``filesync status`` without ``--json``: one line overall, one per location."""
    overall = "paused" if status["paused"] else "syncing" if status["syncing"] else "running"
    lines = [f"FileSync is {overall}; last sync {when(status['last_sync'])}"]
    if status.get("error"):
        lines.append(f"  problem: {status['error']}")
    for loc in status["locations"]:
        lines.append(
            f"  {loc['state']:<11} {loc['spec']}  ({loc['pending']} pending, "
            f"last sync {when(loc['last_sync'])})"
        )
        if loc["last_error"]:
            lines.append(f"              {loc['last_error']}")
    return lines


def print_status(state_dir: Path, as_json: bool) -> int:
    """``filesync status``: 0 when an instance answered, 1 (one line on stderr) when none."""
    status = get_json(state_dir, "/api/status")
    if as_json:
        print(json.dumps(status, indent=2))
    else:
        print("\n".join(status_lines(status)))
    return 0


def login_url(state_dir: Path) -> str:
    """The URL that logs a browser in (it holds the token: never log it)."""
    get_json(state_dir, "/api/status")  # fails with one line when nothing runs
    address, token = find(state_dir)
    return f"{address.url}?token={quote(token)}"


def open_dashboard(state_dir: Path) -> int:
    """``filesync dashboard``: open the running instance's page in the browser."""
    url = login_url(state_dir)
    if not webbrowser.open(url):
        raise FileSyncError("no web browser could be started; run: filesync status")
    print("opened the dashboard in the web browser")
    return 0
