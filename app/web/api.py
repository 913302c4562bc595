"""The JSON API and the page's files, as one Starlette app (the routes; the rules of who may
call them are in :mod:`app.web.guard`).

Blocking work (the engine's lock, a location's disk or server) runs in Starlette's thread
pool; only the event stream is a coroutine, and it ends when the server stops.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.errors import FileSyncError
from app.locations import registry
from app.locations.form.fields import FieldValue, Widget
from app.ui.form import FormError, LocationForm, build_spec, form_kind
from app.web.control import Controls, UnknownLocation
from app.web.feed import ActivityFeed
from app.web.views import kinds_json, status_json

STATIC = Path(__file__).resolve().parent / "static"
#: The page's files; ``--self-check`` proves a build holds them.
PAGE_FILES = ("index.html", "app.css", "app.js")
#: Seconds between two looks at the engine while streaming, and between keep-alive comments.
STREAM_TICK = 0.25
KEEPALIVE = 15.0


class BadRequest(FileSyncError):
    """The request's body or query is not what the API expects."""


def static_dir() -> Path:
    """The page's files: beside this module, in a checkout, a wheel and the one-file build."""
    return STATIC


def missing_page_files() -> list[str]:
    """The page's files this installation lacks (empty when the dashboard can be served)."""
    return [str(static_dir() / name) for name in PAGE_FILES if not (static_dir() / name).is_file()]


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or :class:`BadRequest`."""
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def number(request: Request, name: str, default: float | None) -> float | None:
    """A numeric query parameter, or ``default`` when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number") from None


def error_response(exc: Exception) -> Response:
    """A FileSync error as ``{"error": …}`` (400, 404 for an unknown location)."""
    if isinstance(exc, FormError):
        return JSONResponse({"error": exc.message, "fields": exc.fields}, status_code=400)
    if isinstance(exc, UnknownLocation):
        return JSONResponse({"error": exc.message}, status_code=404)
    assert isinstance(exc, FileSyncError)
    return JSONResponse({"error": exc.message}, status_code=400)


def form_from(body: dict[str, Any]) -> LocationForm:
    """The add-location form a client sent: ``kind`` and that kind's fields, as in the dialog."""
    kind = form_kind(str(body.get("kind") or registry.KINDS[0].name))
    fields = {f.name: f for f in kind.form.fields}
    unknown = sorted(set(body) - set(fields) - {"kind"})
    if unknown:
        expected = ", ".join(["kind", *fields])
        raise BadRequest(f"unknown field {unknown[0]!r}; expected {expected}")
    values: dict[str, FieldValue] = {}
    for name, value in body.items():
        if name == "kind":
            continue
        if fields[name].widget is Widget.CHECKBOX:
            values[name] = bool(value)
        elif isinstance(value, str | int) and not isinstance(value, bool):
            values[name] = str(value)
        else:
            raise BadRequest(f"{name} must be a string")
    return LocationForm(kind.name, **values)


class Api:
    """The routes over one running instance."""

    def __init__(self, controls: Controls, feed: ActivityFeed, stopping: threading.Event):
        self.controls = controls
        self.feed = feed
        self.stopping = stopping

    def routes(self) -> list[BaseRoute]:
        """Every route of the dashboard (the page, its files and ``/api/``)."""
        return [
            Route("/", self.page),
            Mount("/static", StaticFiles(directory=static_dir()), name="static"),
            Route("/api/status", self.status),
            Route("/api/kinds", self.kinds),
            Route("/api/activity", self.activity),
            Route("/api/activity/stream", self.stream),
            Route("/api/pause", self.command(self.controls.pause), methods=["POST"]),
            Route("/api/resume", self.command(self.controls.resume), methods=["POST"]),
            Route("/api/sync", self.command(self.controls.sync_now), methods=["POST"]),
            Route("/api/locations", self.add_location, methods=["POST"]),
            Route("/api/locations/{key:path}", self.remove_location, methods=["DELETE"]),
        ]

    async def page(self, request: Request) -> Response:
        """The dashboard page (never cached: it follows the installed version)."""
        return FileResponse(static_dir() / "index.html", headers={"cache-control": "no-store"})

    def status_data(self) -> dict[str, Any]:
        """``GET /api/status``'s body."""
        return status_json(self.controls.status(), self.controls.specs())

    def status(self, request: Request) -> Response:
        """``GET /api/status``."""
        return JSONResponse(self.status_data())

    async def kinds(self, request: Request) -> Response:
        """``GET /api/kinds``: what the add form offers."""
        return JSONResponse(kinds_json())

    def activity(self, request: Request) -> Response:
        """``GET /api/activity?since=N``: records numbered above N, and the newest number."""
        try:
            since = int(number(request, "since", 0) or 0)
        except BadRequest as exc:
            return error_response(exc)
        records = self.feed.since(since)
        last = records[-1].seq if records else min(max(since, 0), self.feed.last)
        return JSONResponse({"items": [r.as_json() for r in records], "last": last})

    async def stream(self, request: Request) -> Response:
        """``GET /api/activity/stream?since=N``: Server-Sent Events.

        ``activity`` events carry one record each (its number as the event id, so a browser
        resumes after a reconnect); ``status`` events carry the status whenever it changed.
        """
        resume = request.headers.get("last-event-id") or request.query_params.get("since")
        try:
            since = int(resume) if resume else self.feed.last
        except ValueError:
            return error_response(BadRequest("since must be a number"))
        return StreamingResponse(
            self._events(since),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def _events(self, since: int) -> AsyncIterator[str]:
        shown = ""
        quiet = 0.0
        yield "retry: 2000\n\n"
        while not self.stopping.is_set():
            for record in self.feed.since(since):
                since = record.seq
                yield f"id: {record.seq}\nevent: activity\ndata: {json.dumps(record.as_json())}\n\n"
                quiet = 0.0
            status = json.dumps(await run_in_threadpool(self.status_data))
            if status != shown:
                shown = status
                yield f"event: status\ndata: {status}\n\n"
                quiet = 0.0
            if quiet >= KEEPALIVE:
                yield ": keep-alive\n\n"
                quiet = 0.0
            await asyncio.sleep(STREAM_TICK)
            quiet += STREAM_TICK

    def command(self, action: Callable[[], None]) -> Callable[[Request], Response]:
        """A ``POST`` that runs ``action`` and answers with the new status."""

        def endpoint(request: Request) -> Response:
            action()
            return JSONResponse(self.status_data())

        return endpoint

    async def add_location(self, request: Request) -> Response:
        """``POST /api/locations``: the dialog's fields, checked by the dialog's rules."""
        try:
            form = form_from(await json_body(request))
            spec = await run_in_threadpool(self._add, form)
        except FileSyncError as exc:
            return error_response(exc)
        return JSONResponse({"key": spec.key, "spec": spec.redacted}, status_code=201)

    def _add(self, form: LocationForm) -> Any:
        in_use = self.controls.in_use()
        spec = build_spec(form, frozenset(s.key for s in in_use.locations), in_use)
        self.controls.add_location(spec)
        return spec

    def remove_location(self, request: Request) -> Response:
        """``DELETE /api/locations/{key}``: stop syncing it; its files stay."""
        try:
            self.controls.remove_location(request.path_params["key"])
        except FileSyncError as exc:
            return error_response(exc)
        return JSONResponse(self.status_data())


class RouteSource(Protocol):
    """More routes for the app (the trash and conflict calls)."""

    def routes(self) -> list[BaseRoute]: ...


def create_app(api: Api, more: RouteSource, wrap: Callable[[Starlette], Any]) -> Any:
    """The ASGI app: every route, wrapped by ``wrap`` (the guard)."""
    return wrap(Starlette(routes=[*api.routes(), *more.routes()]))
