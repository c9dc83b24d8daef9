"""Sign-in, sign-out, who am I, and panel tokens for integrations."""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from console.access import Principal, can_issue_panel_token
from console.context import SESSION_COOKIE, ApiError, Console
from console.params import LoginRequest, PanelTokenRequest, parse_body
from console.users import verify_password

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 16_384


def _console(request: Request) -> Console:
    return request.app.state.console


async def _json_body(request: Request) -> object:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise ApiError(415, "unsupported_media_type", "send application/json")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", "request body too large")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "invalid_json", "the body is not JSON") from None


def _same_origin(request: Request) -> bool:
    """Login CSRF: a sign-in form posted from another site is refused."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


def _me(console: Console, who: Principal, csrf: str) -> dict[str, object]:
    return {
        "username": who.username,
        "role": who.role,
        "agent_id": who.agent_id,
        "queues": sorted(who.queues),
        "csrf": csrf,
    }


async def login(request: Request) -> Response:
    console = _console(request)
    if not _same_origin(request):
        raise ApiError(403, "cross_origin", "sign in from the console's own page")
    body = parse_body(LoginRequest, await _json_body(request))
    address = request.client.host if request.client else ""
    wait_s = console.throttle.retry_after_s(address, body.username)
    if wait_s > 0:
        log.warning("sign-in throttled")
        raise ApiError(429, "too_many_attempts", f"too many wrong passwords: try again in {wait_s:.0f} s")
    users = console.users.users
    user = users.find(body.username)
    # argon2 checks run in a thread: a burst of sign-ins must not stall every live stream.
    if user is None or not await asyncio.to_thread(verify_password, user, body.password):
        if user is None:
            await asyncio.to_thread(verify_password, None, body.password)  # same cost either way
        console.throttle.failed(address, body.username)
        log.info("sign-in refused")  # no username: a mistyped password is often a password
        raise ApiError(401, "bad_credentials", "wrong username or password")
    console.throttle.succeeded(address, body.username)
    now = console.clock()
    token = console.signer.issue_session(user.username, now=now, ttl_s=console.config.session_ttl_s)
    session = console.signer.open_session(token, now=now)
    who = Principal.of(user, users)
    response = JSONResponse(_me(console, who, console.signer.csrf_token(session)))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=console.config.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=console.config.secure_cookies,
        path="/",
    )
    log.info("signed in", extra={"role": user.role})
    return response


async def logout(request: Request) -> Response:
    console = _console(request)
    console.require(request)  # CSRF-checked: a foreign page cannot sign the user out
    response = JSONResponse({"signed_out": True})
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=console.config.secure_cookies
    )
    return response


async def me(request: Request) -> Response:
    console = _console(request)
    found = console.session_of(request)
    if found is None:
        raise ApiError(401, "unauthenticated", "sign in first")
    who, session = found
    return JSONResponse(
        _me(console, who, console.signer.csrf_token(session)) | {"feed": console.hub.status.view()}
    )


async def panel_token(request: Request) -> Response:
    console = _console(request)
    who = console.require(request)
    if not can_issue_panel_token(who):
        raise ApiError(403, "forbidden", "admins (integrations) only")
    body = parse_body(PanelTokenRequest, await _json_body(request))
    ttl_s = min(body.ttl_s, console.config.agent_token_max_ttl_s)
    now = console.clock()
    token = console.signer.issue_panel(body.agent_id, now=now, ttl_s=ttl_s)
    return JSONResponse(
        {
            "token": token,
            "agent_id": body.agent_id,
            "expires_at": int(now) + ttl_s,
            "panel_url": f"/agent?token={token}",
        }
    )


routes = [
    Route("/api/login", login, methods=["POST"]),
    Route("/api/logout", logout, methods=["POST"]),
    Route("/api/me", me),
    Route("/api/agent-token", panel_token, methods=["POST"]),
]
