"""Server-sent events: one message's wire form, and the response that streams them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

KEEPALIVE_S = 15.0
KEEPALIVE = b": keepalive\n\n"


def message(event: str, data: Any, *, event_id: str | None = None, retry_ms: int | None = None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    lines.append(f"event: {event}")
    payload = json.dumps(data, separators=(",", ":"), default=str)
    lines.append(f"data: {payload}")  # json.dumps never emits a newline: one data line
    return ("\n".join(lines) + "\n\n").encode()


def stream(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
