"""Logging setup: one JSON object per line in production, readable text on a terminal.

Messages are fixed text; the variable parts travel in `extra` and become fields. Transcript text
never goes into a log line (CONVENTIONS 15), at any level: fields named like transcript content
are dropped, and the client libraries' DEBUG lines (aiokafka's producer prints every record's
value there, faust its events) never reach a handler, even at CALLSCOPE_LOG_LEVEL=DEBUG. Only
UNSAFE_LOG_FLAG set to UNSAFE_LOG_VALUE (a long value on purpose: "1" or "true" do not count)
lets them through, for debugging on data that is not personal.

Every line carries `stage` (set once, by configure_logging). Lines written while a stage handles
one call's records carry that call's `call_id` and `leg`: the stage wraps the handling in
`log_context(call_id=..., leg=...)` (a contextvar, so tasks started inside inherit it) and a
filter copies it onto each record. Warnings and errors carry one `error_code` from ERROR_CODES:
the `error_code` the call site gave, else the one its (fixed) message maps to in MESSAGE_ERROR_CODES,
else internal_error for an exception, else unclassified (a test keeps every product message mapped).
The call site's own `code` / `reason` / `error` fields stay beside it as the detail.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType
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


# The one vocabulary of `error_code` on warnings and errors, whatever the stage.
ERROR_CODES = frozenset(
    {
        "broker_unreachable",  # the broker does not answer (start-up wait, a probe, an outage)
        "broker_error",  # the broker answered with an error (a refused offset commit)
        "database_down",  # writes or migrations fail with an error a retry can fix
        "database_refused",  # the database refuses a batch or query for good
        "bad_frame",  # a source sent something the gateway's protocol does not allow
        "bad_record",  # a record that cannot be handled: dead-lettered with its reason
        "deadletter_failed",  # a dead letter not on its topic (spooled to disk, or only logged)
        "engine_error",  # the speech engine failed a session, a decode or a frame
        "engine_stalled",  # the speech engine stopped taking audio or answering
        "engine_unreachable",  # the speech engine's server cannot be reached
        "engine_limit",  # the engine cut an utterance at its own limit
        "capacity_limit",  # a worker at max_live_calls holds a partition
        "language_fallback",  # a call's language is unknown or unsupported: decoded in the default
        "resume_incomplete",  # a takeover could not read the finals already out in time
        "rules_rejected",  # a rule file (or what a rule names) is invalid: the old rules are kept
        "analysis_failed",  # the analysis of one record failed (dead-lettered)
        "state_unreadable",  # stored per-call state could not be read back
        "records_skipped",  # the consumer skipped records (read again, so nothing is lost)
        "config_warning",  # a setting left at a default that is wrong for production
        "auth_throttled",  # repeated wrong passwords
        "client_protocol",  # a client of a served API did something it should not
        "drain_deadline",  # a stage was cancelled at its drain deadline
        "replay_late",  # a replay fell behind its schedule
        "request_failed",  # a served request failed
        "internal_error",  # an exception no call site classified
        "unclassified",  # a warning whose message is not in MESSAGE_ERROR_CODES (a test forbids it)
    }
)
# Fixed message text -> error_code, for the warnings and errors the product writes.
MESSAGE_ERROR_CODES: Mapping[str, str] = {
    "broker not reachable yet, waiting": "broker_unreachable",
    "broker not answering": "broker_unreachable",
    "live feed lost the broker": "broker_unreachable",
    "offset commit failed": "broker_error",
    "database writes failing; holding the batch": "database_down",
    "database migration failed; retrying": "database_down",
    "database refused a batch": "database_refused",
    "history query failed": "database_refused",
    "protocol error": "bad_frame",
    "record dead-lettered": "bad_record",
    "event not folded": "bad_record",
    "dead letter spooled": "deadletter_failed",
    "dead letter not stored": "deadletter_failed",
    "speech session error": "engine_error",
    "frame not transcribed": "engine_error",
    "speech session failed": "engine_error",
    "decode failed": "engine_error",
    "batched decode failed": "engine_error",
    "realtime session failed": "engine_error",
    "realtime server error": "engine_error",
    "realtime handshake refused": "engine_error",
    "unexpected realtime frame": "engine_error",
    "sagemaker model stream error": "engine_error",
    "sagemaker internal stream failure": "engine_error",
    "unknown sagemaker stream event": "engine_error",
    "utterance failed": "engine_error",
    "bridge upstream connect failed": "engine_unreachable",
    "model server connection lost": "engine_unreachable",
    "unknown call language, using the default": "language_fallback",
    "call language not supported by this English-only model: decoded as English": "language_fallback",
    "leg stalled": "engine_stalled",
    "realtime engine stalled": "engine_stalled",
    "utterance ended by the server's length limit": "engine_limit",
    "at max_live_calls: partition held at a new call": "capacity_limit",
    "transcript read for resume cut short; finals may be sent again": "resume_incomplete",
    "rule file rejected; keeping the running rules": "rules_rejected",
    "rule names an unknown knowledge article": "rules_rejected",
    "assist policy failed": "analysis_failed",
    "call state unreadable": "state_unreadable",
    "transcript records skipped by the consumer; read again": "records_skipped",
    "skipped transcript records not read back yet; retrying": "broker_unreachable",
    "no CALLSCOPE_CONSOLE_SESSION_SECRET: sessions end when this process does": "config_warning",
    "sign-in throttled": "auth_throttled",
    "commit ignored: an utterance is running": "client_protocol",
    "stage cancelled": "drain_deadline",
    "replay behind schedule": "replay_late",
    "request failed": "request_failed",
}
assert set(MESSAGE_ERROR_CODES.values()) <= ERROR_CODES

_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("callscope_log_context", default=MappingProxyType({}))


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Lines logged inside (and in tasks started inside) carry `fields` (None values are left out,
    bytes such as a record's key are decoded)."""
    token = _CONTEXT.set({**_CONTEXT.get(), **_fields(fields)})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def set_log_context(**fields: Any) -> None:
    """For a task that handles one record after another (a stream's loop): from here on its lines,
    and those of tasks and threads it starts, carry `fields` instead of the previous record's."""
    _CONTEXT.set(_fields(fields))


def _fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    # A record key (bytes: records are keyed by call id) is logged as text.
    text = {k: v.decode(errors="replace") if isinstance(v, bytes) else v for k, v in fields.items()}
    return {k: v for k, v in text.items() if v is not None}


def error_code_of(record: logging.LogRecord) -> str | None:
    """The record's error_code: None below WARNING; always one of ERROR_CODES at WARNING and above."""
    if record.levelno < logging.WARNING:
        return None
    given = getattr(record, "error_code", None)
    if given in ERROR_CODES:
        return given
    mapped = MESSAGE_ERROR_CODES.get(record.msg) if isinstance(record.msg, str) else None
    if mapped is not None:
        return mapped
    return "internal_error" if record.exc_info else "unclassified"


class ContextFilter(logging.Filter):
    """Puts `stage`, the log_context fields and, on warnings and errors, `error_code` on each record;
    what the call site set itself is kept (a line about another call names that call)."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self._stage = stage

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "stage"):
            record.stage = self._stage
        for key, value in _CONTEXT.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        code = error_code_of(record)
        if code is not None:
            record.error_code = code
        return True


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
    stage: str = "callscope",
) -> None:
    """Replace the root handlers with one that writes `fmt` lines to `stream` (stderr by default),
    each line naming `stage` (the command: transcribe, analyze, ...). The one logging set-up of
    every process: the CLI (deploy/cli_common.configure_logging_from), the SageMaker bridge, the
    benchmarks and the test workers all come here.

    `allow_sensitive` None: as unsafe_logging_allowed() says (off unless the flag is set)."""
    if allow_sensitive is None:
        allow_sensitive = unsafe_logging_allowed()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter(stage))
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
