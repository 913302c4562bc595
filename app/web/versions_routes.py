"""The trash and conflict routes of the API, over :mod:`app.versions`.

Listing reads every location that keeps versions and restoring writes through a location's
own guarded write, so each call runs in Starlette's thread pool, never on the event loop.
What is written is a change like a user's: the engine then syncs it everywhere.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app import versions
from app.errors import FileChanged, FileSyncError, UnknownVersion
from app.web.api import BadRequest, json_body, number
from app.web.control import Controls

#: Most trash items one page may hold.
MAX_PAGE = 500
KEEP = ("current", "copy")


def versions_error(exc: FileSyncError) -> Response:
    """404 for an unknown id, 409 for a version that changed meanwhile, else 400."""
    status = (
        404 if isinstance(exc, UnknownVersion) else 409 if isinstance(exc, FileChanged) else 400
    )
    return JSONResponse({"error": exc.message}, status_code=status)


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name} must be a non-empty string")
    return value


def _time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest("since and until must be times in seconds")
    return float(value)


class VersionRoutes:
    """``/api/trash…`` and ``/api/conflicts…`` over the running instance's locations."""

    def __init__(self, controls: Controls) -> None:
        self.controls = controls

    def routes(self) -> list[BaseRoute]:
        """The routes, for :class:`app.web.api.Api`."""
        return [
            Route("/api/trash", self.trash),
            Route("/api/trash/restore", self.restore, methods=["POST"]),
            Route("/api/trash/restore-window", self.restore_window, methods=["POST"]),
            Route("/api/conflicts", self.conflicts),
            Route("/api/conflicts/resolve", self.resolve, methods=["POST"]),
        ]

    def trash(self, request: Request) -> Response:
        """``GET /api/trash?location=KEY&since=T&until=T&offset=N&limit=N``, newest first."""
        try:
            offset = int(number(request, "offset", 0.0) or 0.0)
            limit = int(number(request, "limit", 100.0) or 0.0)
            if offset < 0 or not 0 < limit <= MAX_PAGE:
                raise BadRequest(f"offset must be 0 or more and limit 1 to {MAX_PAGE}")
            items, total = versions.list_trash(
                self.controls.locations(),
                location=request.query_params.get("location") or None,
                since=number(request, "since", None),
                until=number(request, "until", None),
                offset=offset,
                limit=limit,
            )
        except FileSyncError as exc:
            return versions_error(exc)
        return JSONResponse(
            {
                "items": [item.as_json() for item in items],
                "total": total,
                "offset": offset,
                "limit": limit,
            }
        )

    async def restore(self, request: Request) -> Response:
        """``POST /api/trash/restore {"id"}``: where the version landed."""
        try:
            id = _text(await json_body(request), "id")
            result = await run_in_threadpool(versions.restore, self.controls.locations(), id)
        except FileSyncError as exc:
            return versions_error(exc)
        return JSONResponse(result.as_json())

    async def restore_window(self, request: Request) -> Response:
        """``POST /api/trash/restore-window {"since", "until", "location"}``: every file deleted
        in that window, back where it was; ``until`` defaults to now."""
        try:
            body = await json_body(request)
            since, until = _time(body.get("since")), _time(body.get("until", time.time()))
            location = body.get("location") or None
            if location is not None and not isinstance(location, str):
                raise BadRequest("location must be a location's key")
            results = await run_in_threadpool(
                versions.restore_window,
                self.controls.locations(),
                since,
                until,
                location,
            )
        except FileSyncError as exc:
            return versions_error(exc)
        return JSONResponse({"items": [r.as_json() for r in results]})

    def conflicts(self, request: Request) -> Response:
        """``GET /api/conflicts``."""
        items = versions.list_conflicts(self.controls.locations())
        return JSONResponse({"items": [item.as_json() for item in items]})

    async def resolve(self, request: Request) -> Response:
        """``POST /api/conflicts/resolve {"id", "keep": "current"|"copy"}``."""
        try:
            body = await json_body(request)
            id, keep = _text(body, "id"), body.get("keep")
            if keep not in KEEP:
                raise BadRequest('keep must be "current" or "copy"')
            await run_in_threadpool(versions.resolve, self.controls.locations(), id, keep)
        except FileSyncError as exc:
            return versions_error(exc)
        return JSONResponse({"resolved": id, "kept": keep})
