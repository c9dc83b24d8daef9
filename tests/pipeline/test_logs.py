"""Log lines: JSON with the `extra` fields in production, and never transcript text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from pipeline.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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
