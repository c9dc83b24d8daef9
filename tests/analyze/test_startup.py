"""The analysis stage's start-up with an unreachable broker: a bounded wait, one line, exit 2."""

from __future__ import annotations

from tests.pipeline.test_startup import _assert_one_line, _callscope, _closed_port


def test_analyze_with_an_unreachable_broker_waits_then_exits_with_one_line() -> None:
    done = _callscope(
        "analyze",
        CALLSCOPE_KAFKA_BOOTSTRAP=f"127.0.0.1:{_closed_port()}",
        CALLSCOPE_ANALYZE_BROKER_WAIT_S="1",
    )
    _assert_one_line(done, "analyze", "cannot reach the broker")
    assert "broker not reachable yet, waiting" in done.stderr  # it did wait, and said so
