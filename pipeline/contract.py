"""Shared base for the versioned JSON events every topic carries."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 1_000_000

T = TypeVar("T")


class Event(BaseModel):
    """Immutable, versioned event; unknown fields are ignored so producers can add fields."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    v: int = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class InvalidEvent(ValueError):
    """A record that does not satisfy its topic contract; `reason` is a short, fixed code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def parse_json_event(adapter: TypeAdapter[T], raw: bytes | None) -> T:
    """Validate a record value against a tagged union; raise InvalidEvent with a reason code."""
    if raw is None:
        raise InvalidEvent("empty_value")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent("oversized", f"{len(raw)} bytes")
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent("invalid_json", type(exc).__name__) from None
    if not isinstance(data, dict):
        raise InvalidEvent("invalid_json", "not an object")
    version = data.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise InvalidEvent("unsupported_version", str(version)[:20])
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        # Field names only: never echo values, which may hold transcript text.
        fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        raise InvalidEvent("schema_mismatch", ",".join(fields)[:200]) from None
