"""The console's ASGI app: API routes, pages, static files, security headers, errors as JSON."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console import api_auth, api_history, api_live, metrics
from console.context import ApiError, Console
from console.params import BadRequest

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; media-src 'self' blob:; base-uri 'none'; form-action 'self'"
)


TOPBAR_MARK = "<!-- topbar: console/static/topbar.html, put in by console/app.py -->"


def page_html(name: str) -> str:
    """A page's HTML with the shared top bar (brand, nav, feed state, who, sign-out) put in its place."""
    return (STATIC / name).read_text().replace(TOPBAR_MARK, (STATIC / "topbar.html").read_text().strip())


def _page(name: str, *, embeddable: bool = False) -> Any:
    html = page_html(name)  # read once, when the app is built

    async def page(request: Request) -> Response:
        response = HTMLResponse(html)
        # The agent panel is made for a CCaaS desktop's iframe; every other page refuses framing.
        response.headers["Content-Security-Policy"] = _CSP + (
            "; frame-ancestors *" if embeddable else "; frame-ancestors 'none'"
        )
        return response

    return page


async def _root(request: Request) -> Response:
    return RedirectResponse("/wall", status_code=303)


async def _health(request: Request) -> Response:
    console: Console = request.app.state.console
    return JSONResponse({"feed": console.hub.status.view(), "history": console.engine is not None})


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    body: dict[str, object] = {"error": exc.code, "message": exc.message}
    body.update(exc.extra)
    return JSONResponse(body, status_code=exc.status)


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    return JSONResponse({"error": "bad_request", "problems": exc.problems}, status_code=400)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": "not_found" if exc.status_code == 404 else "http_error"}, status_code=exc.status_code
    )


class Guard:
    """Outermost: security headers on every answer, one access line without the query string (it
    can hold a searched phrase), and a fixed 500 for anything unexpected: no stack trace, no text."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        status = 500
        begun = time.monotonic()

        async def send_with_headers(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for name, value in (
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),  # panel URLs carry a token
                    (b"x-frame-options", b"DENY"),
                ):
                    if name not in names and not (name == b"x-frame-options" and scope["path"] == "/agent"):
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            log.error("request failed", extra={"path": scope["path"][:100], "error": type(exc).__name__})
            if not started:
                response = JSONResponse({"error": "internal", "message": "unexpected error"}, status_code=500)
                await response(scope, receive, send)
        finally:
            metrics.HTTP_REQUESTS.labels(str(status)).inc()
            if not scope["path"].startswith("/static/"):
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"][:100],
                        "status": status,
                        "duration_s": round(time.monotonic() - begun, 4),
                    },
                )


def build_app(console: Console) -> ASGIApp:
    routes = [
        Route("/", _root),
        Route("/healthz", _health),
        Route("/login", _page("login.html")),
        Route("/wall", _page("wall.html")),
        Route("/calls/{call_id}", _page("call.html")),
        Route("/history", _page("history.html")),
        Route("/agent", _page("agent.html", embeddable=True)),
        *api_auth.routes,
        *api_live.routes,
        *api_history.routes,
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={ApiError: _api_error, BadRequest: _bad_request, HTTPException: _http_error},
    )
    app.state.console = console
    return Guard(app)
