"""Start-up problems are one line on stderr and a non-zero exit: no traceback, no aiokafka noise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.kafka import BrokerUnreachable, make_producer, start_client

EXIT_USAGE = 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once closed


def _callscope(stage: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, f"CALLSCOPE_{stage.upper()}_METRICS_ADDRESS": "off", **env}
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", stage], env=environ, capture_output=True, text=True, timeout=120
    )


def _assert_one_line(done: subprocess.CompletedProcess[str], stage: str, starts: str) -> None:
    assert done.returncode == EXIT_USAGE, done.stderr
    errors = [line for line in done.stderr.splitlines() if not line.startswith("{")]  # JSON log lines
    assert errors == [line for line in errors if line.startswith(f"callscope {stage}: {starts}")], done.stderr
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr, done.stderr


async def test_an_unreachable_broker_is_waited_for_then_one_error() -> None:
    bootstrap = f"127.0.0.1:{_closed_port()}"
    made: list[AIOKafkaProducer] = []

    def make() -> AIOKafkaProducer:
        made.append(make_producer(bootstrap, client_id="test-startup"))
        return made[-1]

    with pytest.raises(BrokerUnreachable, match=f"cannot reach the broker at {bootstrap}"):
        await start_client(make, bootstrap=bootstrap, what="producer", wait_s=0.6)
    assert len(made) >= 2  # tried again, each time with a new client


async def test_a_reachable_broker_gives_a_started_client(bootstrap: str) -> None:
    producer = await start_client(
        lambda: make_producer(bootstrap, client_id="test-startup"), bootstrap=bootstrap, what="producer"
    )
    try:
        await producer.send_and_wait("startup-probe", b"x")
    finally:
        await producer.stop()


def test_transcribe_with_an_unreachable_broker_exits_with_one_line() -> None:
    done = _callscope(
        "transcribe",
        CALLSCOPE_KAFKA_BOOTSTRAP=f"127.0.0.1:{_closed_port()}",
        CALLSCOPE_TRANSCRIBE_BROKER_WAIT_S="1",
    )
    _assert_one_line(done, "transcribe", "cannot reach the broker")


def test_a_bad_setting_and_a_bad_rules_file_exit_with_one_line(tmp_path) -> None:
    broker = f"127.0.0.1:{_closed_port()}"
    done = _callscope(
        "transcribe", CALLSCOPE_KAFKA_BOOTSTRAP=broker, CALLSCOPE_TRANSCRIBE_SESSION_TIMEOUT_MS="1000"
    )
    _assert_one_line(done, "transcribe", "invalid configuration: ")
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: x\n    when: [[[\n")
    done = _callscope("analyze", CALLSCOPE_KAFKA_BOOTSTRAP=broker, CALLSCOPE_ANALYZE_RULES_PATH=str(rules))
    _assert_one_line(done, "analyze", f"invalid rules in {rules}: not valid YAML")
