"""Log lines: JSON with the `extra` fields in production, and never transcript text."""

from __future__ import annotations

import ast
import asyncio
import io
import json
import logging
from pathlib import Path

from pipeline.logs import (
    ERROR_CODES,
    MESSAGE_ERROR_CODES,
    UNSAFE_LOG_FLAG,
    UNSAFE_LOG_VALUE,
    configure_logging,
    log_context,
    set_log_context,
    unsafe_logging_allowed,
)


def test_json_lines_carry_message_level_and_extra_fields(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    logging.getLogger("callscope.test").info(
        "segment emitted", extra={"call_id": "c-1", "leg": "agent", "n": 3}
    )
    line = json.loads(stream.getvalue().strip())
    assert line["msg"] == "segment emitted" and line["level"] == "info" and line["logger"] == "callscope.test"
    assert line["call_id"] == "c-1" and line["leg"] == "agent" and line["n"] == 3


def test_transcript_text_in_extra_is_dropped(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    logging.getLogger("callscope.test").info("final", extra={"call_id": "c-1", "text": "my card number is"})
    line = json.loads(stream.getvalue().strip())
    assert "text" not in line and "my card number" not in stream.getvalue()


def test_level_filters_and_text_format_is_readable(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("text", "WARNING", stream=stream)
    log = logging.getLogger("callscope.test")
    log.info("hidden")
    log.warning("replay behind schedule", extra={"late_s": 0.7})
    out = stream.getvalue()
    assert "hidden" not in out
    assert "WARNING" in out and "replay behind schedule" in out and "late_s=0.7" in out


def test_exceptions_are_logged_with_their_type(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    try:
        raise TimeoutError("broker")
    except TimeoutError:
        logging.getLogger("callscope.test").exception("send failed")
    line = json.loads(stream.getvalue().strip())
    assert line["exc_type"] == "TimeoutError" and "Traceback" in line["exc"]


def test_library_debug_lines_with_record_values_never_reach_the_log_at_debug(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream=stream, allow_sensitive=False)
    producer_log = logging.getLogger("aiokafka.producer.producer")
    producer_log.debug("Sending (key=%s value=%s) to %s", b"c-1", b'{"text":"my card number is"}', "tp")
    logging.getLogger("faust.agents.agent").debug("event %r", "four one one one")
    logging.getLogger("aiokafka.consumer.group_coordinator").info("Joined group")
    logging.getLogger("callscope.test").debug("our own debug line", extra={"call_id": "c-1"})
    out = stream.getvalue()
    assert "card number" not in out and "four one" not in out
    assert "Joined group" in out and "our own debug line" in out


def test_only_the_long_unsafe_value_lets_library_debug_lines_through(restore_logging: None) -> None:
    assert not unsafe_logging_allowed({UNSAFE_LOG_FLAG: "1"})
    assert not unsafe_logging_allowed({})
    assert unsafe_logging_allowed({UNSAFE_LOG_FLAG: UNSAFE_LOG_VALUE})
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream=stream, allow_sensitive=True)
    logging.getLogger("aiokafka.producer.producer").debug("Sending (key=%s value=%s)", b"k", b"v-visible")
    assert "v-visible" in stream.getvalue()


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_names_its_stage_and_lines_inside_a_log_context_name_the_call_and_leg(
    restore_logging: None,
) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream, stage="transcribe")
    log = logging.getLogger("callscope.test")
    log.info("started")
    with log_context(call_id=b"c-7", leg=None):  # a record key (bytes); no leg known yet
        log.info("call.started read")
        with log_context(leg="agent"):
            log.info("leg opened")
            log.info("about another call", extra={"call_id": "c-8"})  # the call site's field wins
        log.info("after the leg")
    log.info("between calls")
    lines = _lines(stream)
    assert {line["stage"] for line in lines} == {"transcribe"}
    fields = [(line.get("call_id"), line.get("leg")) for line in lines]
    assert fields == [
        (None, None),
        ("c-7", None),
        ("c-7", "agent"),
        ("c-8", "agent"),
        ("c-7", None),
        (None, None),
    ]


async def test_tasks_started_inside_a_log_context_keep_it_and_a_record_loop_replaces_it(
    restore_logging: None,
) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream, stage="analyze")
    log = logging.getLogger("callscope.test")

    async def leg_task() -> None:
        log.info("from the leg's task")

    with log_context(call_id="c-1", leg="customer"):
        task = asyncio.create_task(leg_task())
    await task

    async def record_loop() -> None:
        for call_id in ("c-2", "c-3"):
            set_log_context(call_id=call_id)
            log.info("record handled")

    await asyncio.create_task(record_loop())
    log.info("outside the loop's task")
    fields = [(line.get("call_id"), line.get("leg")) for line in _lines(stream)]
    assert fields == [("c-1", "customer"), ("c-2", None), ("c-3", None), (None, None)]


def test_warnings_and_errors_carry_one_error_code_from_the_fixed_vocabulary(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream, stage="store")
    log = logging.getLogger("callscope.test")
    log.info("database writes recovered")
    log.warning("database writes failing; holding the batch", extra={"error": "connection_refused"})
    log.warning("frame not transcribed", extra={"code": "engine_failure"})
    log.warning("something new", extra={"error_code": "bad_frame"})
    log.warning("something new", extra={"error_code": "not-in-the-vocabulary"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("an unforeseen failure")
    log.error("a message nobody mapped")
    lines = _lines(stream)
    assert "error_code" not in lines[0]
    assert [line["error_code"] for line in lines[1:]] == [
        "database_down",
        "engine_error",
        "bad_frame",
        "unclassified",
        "internal_error",
        "unclassified",
    ]
    assert lines[1]["error"] == "connection_refused" and lines[2]["code"] == "engine_failure"  # detail kept
    assert {line["error_code"] for line in lines[1:]} <= ERROR_CODES


PRODUCT = ("pipeline", "ingest", "transcribe", "analyze", "store", "console", "deploy")
ROOT = Path(__file__).resolve().parents[2]


def _log_calls(levels: set[str]) -> list[tuple[str, int, str]]:
    """(file, line, message) of every `log.<level>("fixed text", ...)` in the product's modules."""
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in levels
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("log", "logger")
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    found.append((str(path.relative_to(ROOT)), node.lineno, node.args[0].value))
    return found


def test_every_warning_and_error_the_product_writes_maps_to_an_error_code() -> None:
    calls = _log_calls({"warning", "error", "exception", "critical"})
    assert len(calls) > 30  # the scan found the product's log calls
    unmapped = [call for call in calls if call[2] not in MESSAGE_ERROR_CODES]
    assert not unmapped, f"add these messages to pipeline.logs.MESSAGE_ERROR_CODES: {unmapped}"


def test_there_is_one_logging_set_up_and_everything_goes_through_it() -> None:
    setups = []
    for package in (*PRODUCT, "bench", "tests"):
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            if path == Path(__file__).resolve():
                continue
            for needle in ("basicConfig(", "dictConfig(", "fileConfig(", "getLogger().addHandler("):
                if needle in source:
                    setups.append((str(path.relative_to(ROOT)), needle))
    assert setups == []
    handlers = [
        str(path.relative_to(ROOT))
        for package in (*PRODUCT, "bench")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "StreamHandler(" in path.read_text()
    ]
    assert handlers == ["pipeline/logs.py"]
