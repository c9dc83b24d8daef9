"""History API: past calls with filters, full-text search, one stored call."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from console import history
from console.access import can_see_call
from console.api_live import _call_id
from console.context import ApiError, Console
from console.params import HistoryFilter, SearchQuery, parse_query

log = logging.getLogger(__name__)
DB_ERRORS = (OperationalError, DBAPIError, OSError, TimeoutError)


def _console(request: Request) -> Console:
    return request.app.state.console


def _engine(console: Console):  # noqa: ANN202 - AsyncEngine
    if console.engine is None:
        raise ApiError(503, "no_history", "this console has no database (CALLSCOPE_DATABASE_URL)")
    return console.engine


def _database_down(exc: BaseException) -> ApiError:
    log.warning("history query failed", extra={"error": type(exc).__name__})
    return ApiError(
        503, "database_unavailable", "the call history is unavailable; live calls are not affected"
    )


async def calls(request: Request) -> Response:
    console = _console(request)
    who = console.require(request)
    f = parse_query(HistoryFilter, request.query_params, request.scope["query_string"])
    try:
        rows = await history.list_calls(_engine(console), who, f)
    except DB_ERRORS as exc:
        raise _database_down(exc) from None
    return JSONResponse({"calls": rows, "limit": f.limit, "offset": f.offset})


async def search(request: Request) -> Response:
    console = _console(request)
    who = console.require(request)
    f = parse_query(SearchQuery, request.query_params, request.scope["query_string"])
    try:
        hits = await history.search_segments(_engine(console), who, f)
    except DB_ERRORS as exc:
        raise _database_down(exc) from None
    return JSONResponse({"hits": hits})


async def stored_call(request: Request) -> Response:
    console = _console(request)
    who = console.require(request)
    call_id = _call_id(request)
    engine = _engine(console)
    try:
        stored, agent_id, queue = await history.call_owner(engine, call_id)
        if not stored:
            raise ApiError(404, "unknown_call", "no stored call with this id")
        if not can_see_call(who, agent_id=agent_id, queue=queue):
            raise ApiError(403, "forbidden", "not a call you may see")
        detail = await history.stored_call(engine, call_id)
    except DB_ERRORS as exc:
        raise _database_down(exc) from None
    if detail is None:
        raise ApiError(404, "unknown_call", "no stored call with this id")
    return JSONResponse(detail)


routes = [
    Route("/api/history/calls", calls),
    Route("/api/search", search),
    Route("/api/calls/{call_id}", stored_call),
]
