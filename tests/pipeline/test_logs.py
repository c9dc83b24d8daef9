"""Log lines: JSON with the `extra` fields in production, and never transcript text."""

from __future__ import annotations

import io
import json
import logging

from pipeline.logs import UNSAFE_LOG_FLAG, UNSAFE_LOG_VALUE, configure_logging, unsafe_logging_allowed


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
