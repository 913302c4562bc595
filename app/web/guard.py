"""Who may talk to the dashboard: the checks every request passes before any route runs.

Modelled on Syncthing's GUI. A ``Host`` header naming anything but the bound address,
``localhost`` or ``127.0.0.1`` is refused (a DNS-rebinding page cannot reach the API).
``/api/`` needs ``Authorization: Bearer TOKEN`` or the session cookie that opening
``/?token=TOKEN`` once sets (HttpOnly, SameSite=Strict); a state-changing call made with the
cookie must also echo the session's CSRF token in ``X-CSRF-Token``. A refused request learns
nothing: the same short body whatever was wrong.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections import OrderedDict
from urllib.parse import urlencode

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

#: Header a cookie-authenticated page sends with every state-changing call.
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_SESSIONS = 64
WILDCARDS = frozenset({"0.0.0.0", "::", ""})

LOGIN_PAGE = """<!doctype html><meta charset="utf-8"><title>FileSync</title>
<p>Open the dashboard with <code>filesync dashboard</code> or the tray menu's
<b>Open dashboard</b>; they log this browser in.</p>"""


def host_name(header: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8390`` → ``::1``), lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AllowedHosts:
    """The ``Host`` names a request may carry for a server bound to ``bound``.

    Bound to every interface (``0.0.0.0``), any IP address is accepted, never a DNS name:
    rebinding needs a name.
    """

    def __init__(self, bound: str) -> None:
        self.bound = bound.strip("[]").lower()
        self.names = {"localhost", "127.0.0.1", "::1", self.bound}

    def allows(self, header: str) -> bool:
        """True when the request's ``Host`` header names this server."""
        name = host_name(header)
        if name in self.names:
            return True
        return self.bound in WILDCARDS and _is_ip(name)


class Sessions:
    """Browser sessions: a random id in the cookie, its CSRF token kept here (in memory)."""

    def __init__(self) -> None:
        self._csrf: OrderedDict[str, str] = OrderedDict()

    def new(self) -> tuple[str, str]:
        """A new session id and its CSRF token; the oldest session goes past the cap."""
        session, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._csrf[session] = csrf
        while len(self._csrf) > MAX_SESSIONS:
            self._csrf.popitem(last=False)
        return session, csrf

    def csrf(self, session: str | None) -> str | None:
        """The CSRF token of a known session, else None."""
        return self._csrf.get(session) if session else None


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented secret."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class Guard:
    """ASGI middleware applying the rules in the module docstring to every HTTP request."""

    def __init__(self, app: ASGIApp, *, token: str, hosts: AllowedHosts, port: int, tls: bool):
        self.app = app
        self.token = token
        self.hosts = hosts
        self.tls = tls
        self.sessions = Sessions()
        self.session_cookie = f"filesync-session-{port}"
        self.csrf_cookie = f"filesync-csrf-{port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a refused request here; pass an allowed one on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response = self._check(Request(scope))
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _check(self, request: Request) -> Response | None:
        if not self.hosts.allows(request.headers.get("host", "")):
            return Response("forbidden\n", status_code=403, media_type="text/plain")
        path = request.url.path
        if path == "/" and "token" in request.query_params:
            return self._login(request)
        session = request.cookies.get(self.session_cookie)
        csrf = self.sessions.csrf(session)
        if path.startswith("/api/"):
            authorization = request.headers.get("authorization")
            if authorization is not None:
                if same(authorization, f"Bearer {self.token}"):
                    return None
                return _unauthorized()
            if csrf is None:
                return _unauthorized()
            if request.method not in SAFE_METHODS and not same(
                request.headers.get(CSRF_HEADER), csrf
            ):
                return JSONResponse({"error": "forbidden"}, status_code=403)
            return None
        if csrf is None:
            return HTMLResponse(LOGIN_PAGE, status_code=401)
        return None

    def _login(self, request: Request) -> Response:
        if not same(request.query_params.get("token"), self.token):
            return HTMLResponse(LOGIN_PAGE, status_code=403)
        session, csrf = self.sessions.new()
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = str(URL("/").replace(query=urlencode(rest))) if rest else "/"
        response = RedirectResponse(target, status_code=303)
        for name, value, http_only in (
            (self.session_cookie, session, True),
            (self.csrf_cookie, csrf, False),  # the page reads it and echoes it in a header
        ):
            response.set_cookie(
                name, value, httponly=http_only, samesite="strict", secure=self.tls, path="/"
            )
        response.headers["cache-control"] = "no-store"
        return response


def _unauthorized() -> Response:
    return JSONResponse(
        {"error": "unauthorized"}, status_code=401, headers={"www-authenticate": "Bearer"}
    )
