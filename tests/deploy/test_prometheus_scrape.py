"""A real Prometheus scrapes every stage while a call of real speech goes through the whole pipeline;
then every PromQL expression of the rules and dashboards is evaluated against it, and every SQL
panel of the call-analytics dashboard is run against the PostgreSQL the store wrote.

One module, one pipeline (tests/e2e/running.py: Tansu, PostgreSQL, the three stages as processes),
the gateway in this process (its /metrics served here, scraped as the `ingest` job), one short
call through the generic WebSocket protocol, and one malformed transcript record so the
dead-letter series exist. Prometheus (Debian's package) runs on loopback with a 1 s scrape and
evaluation interval, from deploy/prometheus/prometheus.yml with its targets pointed at the ports
the stages bound. No assertion on a wall-clock time: every wait is a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml
from sqlalchemy import text

from bench.clients import GenericClient
from ingest.config import GatewayConfig
from ingest.events import encode_audio_record
from ingest.gateway import open_gateway
from pipeline.kafka import make_producer
from pipeline.stage import metrics_server
from pipeline.topics import TOPICS
from tests.deploy.promql import ROOT, dashboard_promql, dashboard_sql, rule_expressions
from tests.e2e.running import Pipeline, running_pipeline
from tests.transcribe.calls import frames_of
from transcribe.config import TranscribeConfig

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:.*XDG_RUNTIME_DIR")]

BEARER = "scrape-test-bearer"
SCRAPE_JOBS = ("ingest", "transcribe", "analyze", "store")
READY_DEADLINE_S = 30.0
SERIES_DEADLINE_S = 90.0  # rate() over [5m] needs two scrapes after the call; recording rules a pass
POLL_S = 1.0
# What each SQL panel must return: its columns, in order (Grafana's time-series format needs
# time, metric, value).
SQL_COLUMNS = {
    "Calls": ["calls"],
    "Average handle time": ["handle_time_s"],
    "Mean sentiment (final segments)": ["sentiment"],
    "Compliance steps missed": ["missed"],
    "Calls and average handle time per queue": ["queue", "calls", "avg_handle_time_s"],
    "Sentiment distribution (final segments)": ["leg", "sentiment", "segments"],
    "Sentiment trend per leg": ["time", "metric", "value"],
    "Alerts and hints by rule and category": ["kind", "rule_id", "category", "events", "calls"],
    "Compliance by step": ["step", "missed", "met", "calls"],
    "Calls started per queue": ["time", "metric", "value"],
}
# Series only Apache Kafka's exporter provides (compose): the embedded Tansu reports wrong end
# offsets for multi-record batches, so there is no consumer lag to scrape here.
COMPOSE_ONLY_METRICS = ("kafka_",)
LAG_PANEL = "Consumer lag per group (Apache Kafka via kafka-exporter; not on the embedded broker)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_lines(log_path: Path) -> list[dict[str, Any]]:
    """The stage's stderr: every line one JSON object (the stages run with CALLSCOPE_LOG_FORMAT=json)."""
    lines = []
    for n, line in enumerate(log_path.read_text(errors="replace").splitlines(), 1):
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"{log_path.name}:{n} is not a JSON object: {line[:200]!r}") from None
    return lines


def _metrics_port(log_path: Path) -> int:
    found = [line["port"] for line in _log_lines(log_path) if line.get("msg") == "metrics served"]
    assert found, f"{log_path.name} logged no 'metrics served' line"
    return int(found[-1])


@contextlib.contextmanager
def prometheus_server(workdir: Path, targets: dict[str, int]) -> Iterator[str]:
    """Debian's Prometheus on a free loopback port, the repository's config aimed at `targets`."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: install the Debian package `prometheus` (deploy/run.sh test does)"
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(ROOT / "deploy" / "prometheus" / path) for path in config["rule_files"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(targets) <= set(jobs), "the repository's config scrapes every stage"
    config["scrape_configs"] = [
        {**jobs[name], "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        for name, port in targets.items()
    ]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            assert proc.poll() is None, (workdir / "prometheus.log").read_text()[-3000:]
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "Prometheus did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", f"{expr}: {answer}"
    return answer["data"]["result"]


def _grafana_sql(query: str, start: datetime, end: datetime) -> str:
    """Grafana's PostgreSQL macros as its data source expands them."""

    def stamp(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def interval_s(spec: str) -> int:
        number, unit = int(spec[:-1]), spec[-1]
        return number * {"s": 1, "m": 60, "h": 3600}[unit]

    query = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m.group(1)} BETWEEN '{stamp(start)}' AND '{stamp(end)}'",
        query,
    )

    def group(match: re.Match[str]) -> str:
        column, seconds = match.group(1), interval_s(match.group(2))
        return f'floor(extract(epoch from {column})/{seconds})*{seconds} AS "time"'

    query = re.sub(r"\$__timeGroupAlias\(([^,]+),\s*'(\w+)'\)", group, query)
    assert "$__" not in query, f"a macro the test does not expand: {query}"
    return query


class Scraped:
    def __init__(self, pipeline: Pipeline, prometheus: str, call_id: str, started: datetime) -> None:
        self.pipeline, self.prometheus, self.call_id, self.started = pipeline, prometheus, call_id, started


async def _call(gateway: str, call_id: str) -> None:
    from tests.e2e.test_gateway_pipeline import Conversation, paced

    async with GenericClient(f"{gateway}/v1/stream", BEARER) as client:
        await client.start(call_id, "pcm16", 16_000, agent_id="agent-9", queue="retention")

        async def send(n: int, frame: tuple[bytes, bytes]) -> None:
            await client.audio("customer", frame[0])
            await client.audio("agent", frame[1])

        await paced(Conversation().frames("pcm16"), send)
        assert (await client.end())["type"] == "ended"


async def _malformed_transcript_and_late_frame(bootstrap: str, call_id: str) -> None:
    """A transcript record that is not JSON, and an audio frame of the call after its end."""
    late = frames_of(call_id, "customer", np.zeros(160, dtype=np.int16), sample_rate_hz=8_000)[0]
    producer = make_producer(bootstrap, client_id="scrape-test")
    await producer.start()
    try:
        await producer.send_and_wait(TOPICS.transcripts, b"{not json", key=call_id.encode())
        await producer.send_and_wait(TOPICS.audio, encode_audio_record(late), key=call_id.encode())
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
async def scraped(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scraped]:
    logs = tmp_path_factory.mktemp("scrape-stage-logs")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CALLSCOPE_LOG_FORMAT", "json")  # the stages' stderr, checked line by line below
        async with running_pipeline(logs) as pipeline:
            async for scraped in _scraping(pipeline, tmp_path_factory):
                yield scraped


async def _scraping(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scraped]:
    # Its /metrics is the one served below: this process is the `ingest` job.
    config = GatewayConfig(
        kafka_bootstrap=pipeline.bootstrap, port=0, generic_tokens=[BEARER], metrics_address="off"
    )
    with metrics_server(("127.0.0.1", 0), stage="ingest") as ingest_port:
        assert ingest_port is not None
        ports = {stage.name: _metrics_port(stage.log_path) for stage in pipeline.stages.stages}
        ports["ingest"] = ingest_port
        with prometheus_server(tmp_path_factory.mktemp("prometheus"), ports) as prometheus:
            started = datetime.now(UTC)
            call_id = f"scrape-{uuid.uuid4().hex[:10]}"
            async with open_gateway(config) as gateway:
                await _call(f"ws://127.0.0.1:{gateway.port}", call_id)
            await _malformed_transcript_and_late_frame(pipeline.bootstrap, call_id)
            await pipeline.wait_until_stored(call_id)
            yield Scraped(pipeline, prometheus, call_id, started)


async def _wait_for_series(scraped: Scraped, expressions: dict[str, str]) -> dict[str, str]:
    """Evaluate each expression until it returns series or the deadline passes; the ones still empty."""
    pending = dict(expressions)
    deadline = time.monotonic() + SERIES_DEADLINE_S
    while pending and time.monotonic() < deadline:
        scraped.pipeline.check_stages()
        for name, expr in list(pending.items()):
            if await asyncio.to_thread(_query, scraped.prometheus, expr):
                del pending[name]
        if pending:
            await asyncio.sleep(POLL_S)
    return pending


async def test_prometheus_scrapes_every_stage(scraped: Scraped) -> None:
    answer = await asyncio.to_thread(requests.get, f"{scraped.prometheus}/api/v1/targets", timeout=10)
    targets = answer.json()["data"]["activeTargets"]
    health = {t["labels"]["job"]: t["health"] for t in targets}
    assert health == dict.fromkeys(SCRAPE_JOBS, "up"), targets


async def test_every_promql_expression_of_the_rules_and_dashboards_returns_series(
    scraped: Scraped, capsys: pytest.CaptureFixture[str]
) -> None:
    expressions = {**rule_expressions(), **dashboard_promql()}
    recorded = {name: name for name in rule_expressions() if ":" in name}  # the recorded series themselves
    compose_only = {n: e for n, e in expressions.items() if any(m in e for m in COMPOSE_ONLY_METRICS)}
    assert list(compose_only) == ["callscope / live operations / " + LAG_PANEL + " / A"]
    assert len(expressions) - len(compose_only) >= 30
    wanted = {n: e for n, e in {**expressions, **recorded}.items() if n not in compose_only}
    empty = await _wait_for_series(scraped, wanted)
    assert not empty, scraped.pipeline.explain(f"no series for: {empty}")
    with capsys.disabled():
        print(f"\n  {len(wanted)} PromQL expressions returned series", flush=True)


async def test_the_latency_histograms_observed_the_call_at_every_stage(
    scraped: Scraped, capsys: pytest.CaptureFixture[str]
) -> None:
    for metric in (
        "callscope_ingest_frame_delivery_seconds",
        "callscope_transcribe_partial_latency_seconds",
        "callscope_transcribe_first_partial_latency_seconds",
        "callscope_transcribe_final_latency_seconds",
        "callscope_analyze_final_to_assist_latency_seconds",
        "callscope_store_final_to_row_seconds",
    ):
        empty = await _wait_for_series(scraped, {metric: f"sum({metric}_count) > 0"})
        assert not empty, f"{metric} observed nothing"
        count = await asyncio.to_thread(_query, scraped.prometheus, f"sum({metric}_count)")
        p95 = f"histogram_quantile(0.95, sum by (le) ({metric}_bucket))"
        upper = await asyncio.to_thread(_query, scraped.prometheus, p95)
        with capsys.disabled():  # a figure of this one call, not an assertion
            print(f"\n  {metric}: {count[0]['value'][1]} observed, p95 {upper[0]['value'][1]} s", flush=True)
    for gauge in (
        "callscope_transcribe_leg_backlog_seconds",
        "callscope_transcribe_partition_backlog_seconds",
    ):
        worst = await asyncio.to_thread(_query, scraped.prometheus, f"max(max_over_time({gauge}[10m]))")
        with capsys.disabled():  # a figure of this one call, not an assertion
            print(f"\n  {gauge}: worst {worst[0]['value'][1]} s during the call", flush=True)
    # job="transcribe": the `ingest` job is this test process, where other tests may have run workers.
    resent_total = 'sum(callscope_transcribe_segments_resent_total{job="transcribe"})'
    resent = await asyncio.to_thread(_query, scraped.prometheus, resent_total)
    assert float(resent[0]["value"][1]) == 0  # one worker from start to end: nothing re-sent
    by_stage = 'sum by (stage) (callscope_dead_letters_total{reason="invalid_json",job!="ingest"})'
    letters = await asyncio.to_thread(_query, scraped.prometheus, by_stage)
    assert {r["metric"]["stage"] for r in letters} == {"analyze", "store"}
    # The frame sent after the call's end.
    late = 'callscope_transcribe_records_after_call_end_total{job="transcribe"} > 0'
    assert not await _wait_for_series(scraped, {late: late}), "the late frame was not counted"


async def test_each_consuming_stage_reports_its_consumer_lag_and_the_worker_limit(scraped: Scraped) -> None:
    by_job = 'count by (job) ({__name__=~"callscope_.+_consumer_lag_records"})'
    deadline = time.monotonic() + SERIES_DEADLINE_S
    # (The `ingest` job is this test process: other tests run in it may have exported stage metrics.)
    while not {r["metric"]["job"] for r in await asyncio.to_thread(_query, scraped.prometheus, by_job)} >= {
        "transcribe",
        "analyze",
        "store",
    }:
        assert time.monotonic() < deadline, await asyncio.to_thread(_query, scraped.prometheus, by_job)
        await asyncio.sleep(POLL_S)
    limit = await asyncio.to_thread(
        _query, scraped.prometheus, 'callscope_transcribe_max_live_calls{job="transcribe"}'
    )
    assert [float(r["value"][1]) for r in limit] == [TranscribeConfig.model_fields["max_live_calls"].default]


async def test_every_stage_logs_json_lines_naming_the_stage_and_the_call_they_are_about(
    scraped: Scraped,
) -> None:
    # Each stage dead-letters a record of the call (analyze and store: the malformed transcript;
    # transcribe: the frame after the call's end): those lines must name the call.
    for stage in scraped.pipeline.stages.stages:
        deadline = time.monotonic() + SERIES_DEADLINE_S
        while True:
            lines = _log_lines(stage.log_path)
            about_call = [line for line in lines if line.get("call_id") == scraped.call_id]
            if any(line["msg"] == "record dead-lettered" for line in about_call):
                break
            assert time.monotonic() < deadline, f"{stage.name}: no dead-letter line names {scraped.call_id}"
            await asyncio.sleep(POLL_S)
        assert {line.get("stage") for line in lines} == {stage.name}, stage.name
        problems = [line for line in lines if line["level"] in ("warning", "error", "critical")]
        assert all(line.get("error_code") not in (None, "unclassified") for line in problems), problems
        lettered = [line for line in about_call if line["msg"] == "record dead-lettered"]
        assert {line["error_code"] for line in lettered} == {"bad_record"}, stage.name
        if stage.name == "transcribe":
            assert {line.get("leg") for line in lettered} == {"customer"}  # the late frame's leg


async def test_every_sql_panel_returns_rows_with_the_columns_it_expects(scraped: Scraped) -> None:
    queries = dashboard_sql()
    titles = {name.split(" / ")[-2] for name in queries}
    assert titles == set(SQL_COLUMNS), "every SQL panel has its expected columns here"
    start, end = scraped.started - timedelta(minutes=5), datetime.now(UTC) + timedelta(minutes=5)
    async with scraped.pipeline.engine.connect() as conn:
        for name, query in queries.items():
            result = await conn.execute(text(_grafana_sql(query, start, end)))
            rows = result.all()
            assert list(result.keys()) == SQL_COLUMNS[name.split(" / ")[-2]], name
            assert rows, f"{name}: no rows for call {scraped.call_id}"
            assert all(value is not None for value in rows[0]), f"{name}: {rows[0]}"
