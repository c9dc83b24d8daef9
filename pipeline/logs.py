"""Logging setup: one JSON object per line in production, readable text on a terminal.

Messages are fixed text; the variable parts travel in `extra` and become fields. Transcript text
never goes into a log line (CONVENTIONS 15), at any level: fields named like transcript content
are dropped, and the client libraries' DEBUG lines (aiokafka's producer prints every record's
value there, faust its events) never reach a handler, even at CALLSCOPE_LOG_LEVEL=DEBUG. Only
UNSAFE_LOG_FLAG set to UNSAFE_LOG_VALUE (a long value on purpose: "1" or "true" do not count)
lets them through, for debugging on data that is not personal.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Literal, TextIO

LogFormat = Literal["json", "text"]

# Attributes every LogRecord has; anything else on a record came from `extra`.
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Field names that would carry personal data; kept out unless explicitly allowed.
SENSITIVE_FIELDS = frozenset({"text", "transcript", "partial_text", "final_text", "words", "payload"})
# Client libraries whose DEBUG lines print record values (transcripts, audio) or events.
LIBRARY_LOGGERS = ("aiokafka", "kafka", "faust", "mode", "asyncio", "faster_whisper", "alembic", "websockets")
UNSAFE_LOG_FLAG = "CALLSCOPE_LOG_UNSAFE_TRANSCRIPTS_AND_RECORD_VALUES"
UNSAFE_LOG_VALUE = "i-know-logs-will-hold-personal-data"


def unsafe_logging_allowed(environ: dict[str, str] | None = None) -> bool:
    """Whether the explicit flag lets transcript fields and library DEBUG lines into the logs."""
    return (os.environ if environ is None else environ).get(UNSAFE_LOG_FLAG) == UNSAFE_LOG_VALUE


class LibraryDebugFilter(logging.Filter):
    """Drops the client libraries' DEBUG records, whatever their loggers' levels were set to."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            return True
        return not any(record.name == n or record.name.startswith(n + ".") for n in LIBRARY_LOGGERS)


def extra_fields(record: logging.LogRecord, *, allow_sensitive: bool = False) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(record).items()
        if k not in _RESERVED and not k.startswith("_") and (allow_sensitive or k not in SENSITIVE_FIELDS)
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the `extra` fields, and exc when raised."""

    def __init__(self, *, allow_sensitive: bool = False) -> None:
        super().__init__()
        self._allow_sensitive = allow_sensitive

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(extra_fields(record, allow_sensitive=self._allow_sensitive))
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """`HH:MM:SS.mmm LEVEL logger: message key=value ...` for people at a terminal."""

    def __init__(self, *, allow_sensitive: bool = False) -> None:
        super().__init__()
        self._allow_sensitive = allow_sensitive

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        fields = extra_fields(record, allow_sensitive=self._allow_sensitive)
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(
    fmt: LogFormat = "json",
    level: str | int = "INFO",
    *,
    stream: TextIO | None = None,
    allow_sensitive: bool | None = None,
) -> None:
    """Replace the root handlers with one that writes `fmt` lines to `stream` (stderr by default).

    `allow_sensitive` None: as unsafe_logging_allowed() says (off unless the flag is set)."""
    if allow_sensitive is None:
        allow_sensitive = unsafe_logging_allowed()
    handler = logging.StreamHandler(stream or sys.stderr)
    if not allow_sensitive:
        handler.addFilter(LibraryDebugFilter())
    formatter_cls = JsonFormatter if fmt == "json" else TextFormatter
    handler.setFormatter(formatter_cls(allow_sensitive=allow_sensitive))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # Client libraries are chatty at INFO (every rebalance, every connection): warnings only; at
    # DEBUG their INFO lines too, and their DEBUG lines (record values) only with the unsafe flag.
    debug = root.level <= logging.DEBUG
    library_level = logging.WARNING if not debug else logging.NOTSET if allow_sensitive else logging.INFO
    for noisy in LIBRARY_LOGGERS:
        logging.getLogger(noisy).setLevel(library_level)
