"""Query parameters of the API: typed, bounded and strict. Bad input becomes a 400 naming the
parameter and the problem, never echoing the value (it may be a transcript phrase)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.datastructures import QueryParams

MAX_QUERY_STRING_BYTES = 4096
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"

M = TypeVar("M", bound=BaseModel)


class BadRequest(Exception):
    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("bad request")
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class LiveFilter(_Strict):
    queue: str | None = Field(None, max_length=128)
    agent: str | None = Field(None, max_length=128)
    has_alert: bool | None = None
    sentiment_below: float | None = Field(None, ge=-1, le=1)
    sort: Literal["duration", "sentiment", "alerts", "severity", "agent", "queue"] = "duration"


class _TimeRange(_Strict):
    from_: datetime | None = Field(None, alias="from")
    to: datetime | None = None
    agent: str | None = Field(None, pattern=_ID)
    queue: str | None = Field(None, max_length=128)

    @model_validator(mode="after")
    def _ordered(self) -> _TimeRange:
        if self.from_ and self.to and self.from_ > self.to:
            raise ValueError("from must not be after to")
        return self


class HistoryFilter(_TimeRange):
    end_reason: str | None = Field(None, max_length=64)
    sentiment_below: float | None = Field(None, ge=-1, le=1)
    rule: str | None = Field(None, pattern=r"^[a-z0-9_.-]{1,128}$")
    compliance_missed: bool | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=100_000)


class SearchQuery(_TimeRange):
    q: str = Field(min_length=1, max_length=200)
    leg: Literal["agent", "customer"] | None = None
    limit: int = Field(20, ge=1, le=100)


class PanelTokenRequest(_Strict):
    agent_id: str = Field(pattern=_ID)
    ttl_s: int = Field(900, ge=60, le=24 * 3600)


class LoginRequest(_Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


def call_id_ok(call_id: str) -> bool:
    return 0 < len(call_id) <= 128 and all(c.isalnum() or c in "_.:@-" for c in call_id)


def parse_query(model: type[M], query: QueryParams, raw_query: bytes) -> M:
    if len(raw_query) > MAX_QUERY_STRING_BYTES:
        raise BadRequest([{"param": "query", "problem": f"longer than {MAX_QUERY_STRING_BYTES} bytes"}])
    values: dict[str, str] = {}
    for key, value in query.multi_items():
        if key in values:
            raise BadRequest([{"param": key[:40], "problem": "given more than once"}])
        if value == "":
            continue
        values[key] = value
    return parse_body(model, values)


def parse_body(model: type[M], data: object) -> M:
    if not isinstance(data, dict):
        raise BadRequest([{"param": "body", "problem": "expected a JSON object"}])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(
            [
                {"param": ".".join(str(p) for p in err["loc"])[:40] or "body", "problem": err["msg"][:120]}
                for err in exc.errors()
            ]
        ) from None
