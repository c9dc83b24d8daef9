"""What the web handlers share: config, live hub, users, signer, database; and the access plumbing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from console.access import Principal, can_see_call
from console.auth import Session, Signer, TokenError
from console.config import ConsoleConfig
from console.feed import Hub
from console.live_state import LiveCall
from console.throttle import SignInThrottle
from console.users import UserDirectory

SESSION_COOKIE = "callscope_session"
CSRF_HEADER = "x-csrf-token"


class ApiError(Exception):
    """An answer other than 2xx: status, a fixed code and a short message (never user input)."""

    def __init__(self, status: int, code: str, message: str = "", **extra: object) -> None:
        super().__init__(code)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass
class Console:
    config: ConsoleConfig
    hub: Hub
    users: UserDirectory
    signer: Signer
    engine: AsyncEngine | None
    clock: Callable[[], float] = time.time
    throttle: SignInThrottle = field(default_factory=SignInThrottle)

    def session_of(self, request: Request) -> tuple[Principal, Session] | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        try:
            session = self.signer.open_session(token, now=self.clock())
        except TokenError:
            return None
        users = self.users.users
        user = users.find(session.username)
        if user is None:
            return None  # removed from the users file: the session ends with it
        return Principal.of(user, users), session

    def require(self, request: Request) -> Principal:
        found = self.session_of(request)
        if found is None:
            raise ApiError(401, "unauthenticated", "sign in first")
        who, session = found
        if request.method not in ("GET", "HEAD", "OPTIONS") and not self.signer.check_csrf(
            session, request.headers.get(CSRF_HEADER)
        ):
            raise ApiError(403, "csrf", "missing or wrong CSRF token")
        return who

    def require_supervisor(self, request: Request) -> Principal:
        who = self.require(request)
        if not who.is_supervisor:
            raise ApiError(403, "forbidden", "supervisors only")
        return who

    def panel_or_session(self, request: Request) -> Principal:
        """The agent panel signs in with a token in the URL (an iframe has no password prompt)."""
        token = request.query_params.get("token")
        if token:
            try:
                grant = self.signer.open_panel(token, now=self.clock())
            except TokenError as exc:
                raise ApiError(401, f"token_{exc.reason}", "the panel token is not valid") from None
            return Principal.panel(grant.agent_id)
        return self.require(request)

    def live_call_for(self, request: Request, who: Principal, call_id: str) -> LiveCall:
        call = self.hub.state.calls.get(call_id)
        if call is None:
            raise ApiError(404, "unknown_call", "no live call with this id")
        if not can_see_call(who, agent_id=call.agent_id, queue=call.queue):
            raise ApiError(403, "forbidden", "not a call you may see")
        return call
