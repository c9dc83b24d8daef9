"""The ingest gateway and the console as `callscope` runs them (real processes on the real broker):
its stderr is one JSON object a line, each naming the stage, and the lines about a call name it.
(The transcribe, analyze and store processes are checked the same way in test_prometheus_scrape.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import websockets

from bench.clients import GenericClient
from deploy.runtime import free_port
from pipeline.kafka import create_topics

DEADLINE_S = 30.0


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for(path: Path, msg: str, proc: subprocess.Popen) -> list[dict]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        assert proc.poll() is None, path.read_text()[-2000:]
        lines = _lines(path)
        if any(line["msg"] == msg for line in lines):
            return lines
        assert time.monotonic() < deadline, f"no {msg!r} line: {path.read_text()[-2000:]}"
        time.sleep(0.1)


async def test_the_gateway_process_logs_json_lines_with_its_stage_and_the_calls_id(
    bootstrap: str, tmp_path: Path
) -> None:
    await create_topics(bootstrap, 2)
    port = free_port()
    env = dict(
        os.environ,
        CALLSCOPE_KAFKA_BOOTSTRAP=bootstrap,
        CALLSCOPE_INGEST_PORT=str(port),
        CALLSCOPE_INGEST_GENERIC_TOKENS='["log-test-token"]',
        CALLSCOPE_INGEST_METRICS_ADDRESS="off",
        CALLSCOPE_LOG_FORMAT="json",
    )
    stderr = tmp_path / "gateway.log"
    with stderr.open("wb") as err:
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "deploy.cli", "ingest", "gateway"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    try:
        await asyncio.to_thread(_wait_for, stderr, "gateway listening", proc)
        async with GenericClient(f"ws://127.0.0.1:{port}/v1/stream", "log-test-token") as client:
            await client.start("log-call-1", "pcm16", 16_000)
            await client.audio("customer", bytes(640))
            await client.ws.send(json.dumps({"type": "no-such-message"}))  # a protocol error
            with contextlib.suppress(websockets.ConnectionClosed):
                await asyncio.wait_for(client.receive_json(), DEADLINE_S)
        lines = await asyncio.to_thread(_wait_for, stderr, "protocol error", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, DEADLINE_S)
    lines = _lines(stderr)  # every line parses: _lines raises on one that does not
    assert proc.returncode == 0, stderr.read_text()[-2000:]
    assert lines and {line["stage"] for line in lines} == {"ingest"}
    (accepted,) = [line for line in lines if line["msg"] == "call accepted"]
    (error,) = [line for line in lines if line["msg"] == "protocol error"]
    assert accepted["call_id"] == error["call_id"] == "log-call-1"
    assert error["error_code"] == "bad_frame" and error["level"] == "warning"
    assert all("error_code" in line for line in lines if line["level"] in ("warning", "error"))


async def test_the_console_process_logs_json_lines_with_its_stage_and_error_codes(
    bootstrap: str, tmp_path: Path
) -> None:
    await create_topics(bootstrap, 2)
    users = tmp_path / "users.yaml"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "deploy.cli", "console", "add-user", "ava", "--role", "agent"],
        input="correct horse\n",
        text=True,
        capture_output=True,
        env=dict(os.environ, CALLSCOPE_CONSOLE_USERS_FILE=str(users)),
        timeout=DEADLINE_S,
    )
    assert done.returncode == 0, done.stderr
    env = dict(
        os.environ,
        CALLSCOPE_KAFKA_BOOTSTRAP=bootstrap,
        CALLSCOPE_CONSOLE_PORT=str(free_port()),
        CALLSCOPE_CONSOLE_USERS_FILE=str(users),
        CALLSCOPE_CONSOLE_METRICS_ADDRESS="off",
        CALLSCOPE_LOG_FORMAT="json",
    )
    env.pop("CALLSCOPE_CONSOLE_SESSION_SECRET", None)  # so it warns: a warning's fields are checked
    env.pop("CALLSCOPE_DATABASE_URL", None)  # live only
    stderr = tmp_path / "console.log"
    with stderr.open("wb") as err:
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "deploy.cli", "console"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    try:
        await asyncio.to_thread(_wait_for, stderr, "console serving", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, DEADLINE_S)
    lines = _lines(stderr)
    assert {line["stage"] for line in lines} == {"console"}
    (warning,) = [line for line in lines if "SESSION_SECRET" in line["msg"]]
    assert warning["level"] == "warning" and warning["error_code"] == "config_warning"
