"""The Grafana dashboards, as code: `python -m deploy.grafana.dashboards` writes dashboards/*.json.

Four dashboards: live operations, per-stage latency, ASR engine health (Prometheus) and call
analytics (PostgreSQL). Every PromQL and SQL query here is run by tests/deploy against a real
Prometheus scraping the stages and the real PostgreSQL after a call (test_prometheus_scrape.py).
SQL uses only the macros $__timeFilter and $__timeGroupAlias (the test expands them as Grafana's
PostgreSQL data source does). The JSON is committed; a test fails if it differs from this code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    Dashboard,
    GridPos,
    SqlTarget,
    Stat,
    Table,
    Target,
    TimeSeries,
)

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
PROMETHEUS = {"type": "prometheus", "uid": "callscope-prometheus"}
POSTGRES = {"type": "grafana-postgresql-datasource", "uid": "callscope-postgres"}
TAGS = ["callscope"]
# The speech-end -> final target the alert pages on (deploy/prometheus/rules/callscope-alerts.yml).
FINAL_TARGET_S = 1.5


class Layout:
    """Panels left to right, `per_row` to a row of height `h`."""

    def __init__(self, per_row: int = 3, h: int = 8) -> None:
        self.per_row, self.h, self.n = per_row, h, 0

    def next(self) -> GridPos:
        w = 24 // self.per_row
        pos = GridPos(h=self.h, w=w, x=(self.n % self.per_row) * w, y=(self.n // self.per_row) * self.h)
        self.n += 1
        return pos


def prom(expr: str, legend: str = "", ref: str = "A") -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, datasource=PROMETHEUS)


def sql(query: str, fmt: str = "table", ref: str = "A") -> SqlTarget:
    return SqlTarget(rawSql=query.strip(), rawQuery=True, format=fmt, refId=ref, datasource=POSTGRES)


def series(layout: Layout, title: str, targets: list[Target], unit: str = "short", **kw) -> TimeSeries:
    return TimeSeries(
        title=title, dataSource=PROMETHEUS, targets=targets, unit=unit, gridPos=layout.next(), **kw
    )


def quantiles(metric: str, by: str = "") -> list[Target]:
    """p50, p95, p99 of a latency histogram over 5 minutes."""
    group = f"{by}, le" if by else "le"
    legend_by = "".join(f" {{{{{label.strip()}}}}}" for label in by.split(",") if label.strip())
    return [
        prom(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[5m])))",
            f"p{round(q * 100)}{legend_by}",
            ref,
        )
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]


def live_operations() -> Dashboard:
    layout = Layout()
    return Dashboard(
        title="callscope / live operations",
        uid="callscope-live-ops",
        tags=TAGS,
        refresh="10s",
        panels=[
            series(
                layout,
                "Active calls",
                [
                    prom("sum(callscope_ingest_calls_active)", "gateway connections", "A"),
                    prom("sum(callscope_transcribe_calls_active)", "transcribing", "B"),
                    prom("sum(callscope_analyze_active_calls)", "analysing", "C"),
                ],
            ),
            series(
                layout,
                "ASR sessions per worker, and its limit (2 x max_live_calls)",
                [
                    prom("sum by (instance) (callscope_transcribe_sessions_open)", "{{instance}}", "A"),
                    prom("instance:callscope_transcribe_session_limit:max", "{{instance}} limit", "B"),
                ],
            ),
            series(
                layout,
                "Audio backlog: legs fed behind live, partitions read not handed on, engine unsent",
                [
                    prom(
                        "max by (instance, leg) (callscope_transcribe_leg_backlog_seconds)",
                        "{{instance}} {{leg}} legs",
                        "A",
                    ),
                    prom(
                        "max by (instance, partition) (callscope_transcribe_partition_backlog_seconds)",
                        "{{instance}} partition {{partition}}",
                        "B",
                    ),
                    prom(
                        "sum by (instance) (callscope_transcribe_audio_backlog_seconds)",
                        "{{instance}} engine unsent",
                        "C",
                    ),
                ],
                unit="s",
            ),
            series(
                layout,
                "Dead letters by stage and reason (per minute)",
                [
                    prom(
                        "sum by (stage, reason) (rate(callscope_dead_letters_total[5m])) * 60",
                        "{{stage}} {{reason}}",
                    )
                ],
            ),
            series(
                layout,
                "Partitions paused by backpressure",
                [prom("sum by (instance) (callscope_transcribe_partitions_paused)", "{{instance}}")],
            ),
            series(
                layout,
                "Records after a call's end, re-sent segments, records read again (per minute)",
                [
                    prom(
                        "sum(rate(callscope_transcribe_records_after_call_end_total[5m])) * 60",
                        "transcribe: after end",
                        "A",
                    ),
                    prom(
                        "sum(rate(callscope_analyze_records_after_call_end_total[5m])) * 60",
                        "analyze: after end",
                        "E",
                    ),
                    prom(
                        "sum(rate(callscope_store_records_after_call_end_total[5m])) * 60",
                        "store: after end",
                        "F",
                    ),
                    prom(
                        "sum by (type) (rate(callscope_transcribe_segments_resent_total[5m])) * 60",
                        "transcribe: re-sent {{type}}",
                        "B",
                    ),
                    prom(
                        "sum(rate(callscope_analyze_segments_resent_total[5m])) * 60",
                        "analyze: re-sent final",
                        "C",
                    ),
                    prom(
                        "sum(rate(callscope_store_segments_resent_total[5m])) * 60",
                        "store: re-written final",
                        "D",
                    ),
                    prom(
                        "sum(rate(callscope_analyze_records_reread_total[5m])) * 60",
                        "analyze: skipped by faust, read again",
                        "G",
                    ),
                ],
            ),
            series(
                layout,
                "Stages up",
                [prom('up{job=~"ingest|transcribe|analyze|store|console"}', "{{job}} {{instance}}")],
            ),
            series(
                layout,
                "Store: rows written (per second)",
                [prom("sum by (kind) (rate(callscope_store_rows_written_total[5m]))", "{{kind}}")],
            ),
            series(
                layout,
                "Consumer lag per group (Apache Kafka via kafka-exporter; not on the embedded broker)",
                [
                    prom(
                        "sum by (consumergroup, topic) (kafka_consumergroup_lag)",
                        "{{consumergroup}} {{topic}}",
                    )
                ],
            ),
            series(
                layout,
                "Consumer lag seen by each consumer (records; any broker)",
                [
                    prom(
                        'sum by (job, topic) ({__name__=~"callscope_.+_consumer_lag_records"})',
                        "{{job}} {{topic}}",
                    )
                ],
            ),
            series(
                layout,
                "Speech end -> final p95 vs target",
                [
                    prom("max(job:callscope_transcribe_final_latency_seconds:p95_5m)", "p95", "A"),
                    prom(f"vector({FINAL_TARGET_S})", "target", "B"),
                ],
                unit="s",
            ),
        ],
    ).auto_panel_ids()


def stage_latency() -> Dashboard:
    layout = Layout(per_row=2)
    panels = [
        ("Gateway socket -> broker ack", "callscope_ingest_frame_delivery_seconds", ""),
        ("Audio captured -> partial", "callscope_transcribe_partial_latency_seconds", ""),
        ("Speech start -> first partial", "callscope_transcribe_first_partial_latency_seconds", ""),
        ("Speech end -> final", "callscope_transcribe_final_latency_seconds", ""),
        ("Final -> sentiment, hint, alert", "callscope_analyze_final_to_assist_latency_seconds", "type"),
        ("Partial -> hint, alert", "callscope_analyze_partial_to_assist_latency_seconds", "type"),
        ("Final -> row stored", "callscope_store_final_to_row_seconds", ""),
        ("Store batch write", "callscope_store_batch_write_seconds", ""),
    ]
    return Dashboard(
        title="callscope / latency per stage",
        uid="callscope-latency",
        tags=TAGS,
        refresh="30s",
        description="p50/p95/p99 over 5 minutes from each stage's histogram; first emissions only.",
        panels=[series(layout, title, quantiles(metric, by), unit="s") for title, metric, by in panels],
    ).auto_panel_ids()


def asr_engine() -> Dashboard:
    layout = Layout()
    return Dashboard(
        title="callscope / ASR engine health",
        uid="callscope-asr",
        tags=TAGS,
        refresh="30s",
        panels=[
            series(
                layout,
                "Sessions open per worker",
                [prom("sum by (instance) (callscope_transcribe_sessions_open)", "{{instance}}")],
            ),
            series(
                layout,
                "Engine errors by code (per minute)",
                [prom("sum by (code) (rate(callscope_transcribe_leg_errors_total[5m])) * 60", "{{code}}")],
            ),
            series(
                layout,
                "Realtime server: connections open, reconnects by cause (per minute)",
                [
                    prom("sum(callscope_transcribe_realtime_connections_open)", "connections open", "A"),
                    prom(
                        "sum by (code) (rate(callscope_transcribe_realtime_reconnects_total[5m])) * 60",
                        "reconnect {{code}}",
                        "B",
                    ),
                ],
            ),
            series(
                layout,
                "Commit -> first delta (realtime engine)",
                quantiles("callscope_transcribe_first_delta_latency_seconds"),
                unit="s",
            ),
            series(
                layout,
                "Audio frames in, dropped by reason (per second)",
                [
                    prom("sum(rate(callscope_transcribe_frames_total[5m]))", "in", "A"),
                    prom(
                        "sum by (reason) (rate(callscope_transcribe_frames_dropped_total[5m]))",
                        "dropped {{reason}}",
                        "B",
                    ),
                ],
            ),
            series(
                layout,
                "Speech end -> final",
                quantiles("callscope_transcribe_final_latency_seconds"),
                unit="s",
            ),
        ],
    ).auto_panel_ids()


def _category_values() -> str:
    """rule id -> category from the shipped rule file, as SQL VALUES (assist events carry no category)."""
    from analyze.rules import load_rules

    rules = load_rules()
    pairs = [(r.id, r.category or "uncategorised") for r in rules.rules]
    pairs += [(item.id, "compliance") for item in rules.compliance]
    return ", ".join(f"('{rule_id}', '{category}')" for rule_id, category in sorted(pairs))


def call_analytics() -> Dashboard:
    layout = Layout(per_row=2, h=9)
    stat_layout = Layout(per_row=4, h=4)
    stats = [
        Stat(
            title="Calls",
            dataSource=POSTGRES,
            gridPos=stat_layout.next(),
            targets=[sql("SELECT count(*) AS calls FROM calls WHERE $__timeFilter(started_at)")],
        ),
        Stat(
            title="Average handle time",
            dataSource=POSTGRES,
            gridPos=stat_layout.next(),
            format="s",
            targets=[
                sql(
                    """
SELECT avg(extract(epoch FROM ended_at - started_at)) AS handle_time_s
FROM calls
WHERE ended_at IS NOT NULL AND $__timeFilter(started_at)
"""
                )
            ],
        ),
        Stat(
            title="Mean sentiment (final segments)",
            dataSource=POSTGRES,
            gridPos=stat_layout.next(),
            decimals=2,
            targets=[
                sql(
                    """
SELECT avg(sentiment_compound) AS sentiment
FROM segments
WHERE sentiment_compound IS NOT NULL AND $__timeFilter(emitted_at)
"""
                )
            ],
        ),
        Stat(
            title="Compliance steps missed",
            dataSource=POSTGRES,
            gridPos=stat_layout.next(),
            targets=[
                sql(
                    """
SELECT count(*) AS missed
FROM compliance_state
WHERE status = 'missed' AND $__timeFilter(emitted_at)
"""
                )
            ],
        ),
    ]
    y0 = stat_layout.h  # the tables and graphs go below the row of stats

    def table(title: str, query: str) -> Table:
        pos = layout.next()
        pos.y += y0
        return Table(title=title, dataSource=POSTGRES, gridPos=pos, targets=[sql(query)])

    def timeseries(title: str, query: str, unit: str = "short") -> TimeSeries:
        pos = layout.next()
        pos.y += y0
        return TimeSeries(
            title=title, dataSource=POSTGRES, gridPos=pos, unit=unit, targets=[sql(query, fmt="time_series")]
        )

    panels = [
        table(
            "Calls and average handle time per queue",
            """
SELECT coalesce(nullif(queue, ''), '(none)') AS queue,
       count(*) AS calls,
       avg(extract(epoch FROM ended_at - started_at)) AS avg_handle_time_s
FROM calls
WHERE $__timeFilter(started_at)
GROUP BY 1
ORDER BY calls DESC
""",
        ),
        table(
            "Sentiment distribution (final segments)",
            """
SELECT leg,
       CASE WHEN sentiment_compound <= -0.05 THEN 'negative'
            WHEN sentiment_compound >= 0.05 THEN 'positive'
            ELSE 'neutral' END AS sentiment,
       count(*) AS segments
FROM segments
WHERE sentiment_compound IS NOT NULL AND $__timeFilter(emitted_at)
GROUP BY 1, 2
ORDER BY 1, 2
""",
        ),
        timeseries(
            "Sentiment trend per leg",
            """
SELECT $__timeGroupAlias(emitted_at, '5m'), leg AS metric, avg(sentiment_compound) AS value
FROM segments
WHERE sentiment_compound IS NOT NULL AND $__timeFilter(emitted_at)
GROUP BY 1, 2
ORDER BY 1
""",
        ),
        table(
            "Alerts and hints by rule and category",
            f"""
WITH categories(rule_id, category) AS (VALUES {_category_values()})
SELECT e.kind, e.rule_id, coalesce(c.category, 'uncategorised') AS category,
       count(*) AS events, count(DISTINCT e.call_id) AS calls
FROM assist_events e LEFT JOIN categories c USING (rule_id)
WHERE e.origin = 'live' AND $__timeFilter(e.emitted_at)
GROUP BY 1, 2, 3
ORDER BY events DESC
""",
        ),
        table(
            "Compliance by step",
            """
SELECT item_id AS step,
       count(*) FILTER (WHERE status = 'missed') AS missed,
       count(*) FILTER (WHERE status = 'met') AS met,
       count(*) AS calls
FROM compliance_state
WHERE call_ended AND $__timeFilter(emitted_at)
GROUP BY 1
ORDER BY missed DESC, step
""",
        ),
        timeseries(
            "Calls started per queue",
            """
SELECT $__timeGroupAlias(started_at, '5m'), coalesce(nullif(queue, ''), '(none)') AS metric, count(*) AS value
FROM calls
WHERE $__timeFilter(started_at)
GROUP BY 1, 2
ORDER BY 1
""",
        ),
    ]
    return Dashboard(
        title="callscope / call analytics",
        uid="callscope-call-analytics",
        tags=TAGS,
        refresh="1m",
        description="From PostgreSQL (the store's tables). Rule categories come from the shipped rule file.",
        panels=stats + panels,
    ).auto_panel_ids()


DASHBOARDS = {
    "live-operations": live_operations,
    "stage-latency": stage_latency,
    "asr-engine": asr_engine,
    "call-analytics": call_analytics,
}


def render() -> dict[str, str]:
    """file name -> JSON text of every dashboard."""
    return {
        f"{name}.json": json.dumps(build().to_json_data(), cls=DashboardEncoder, indent=2, sort_keys=True)
        + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    OUT_DIR.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT_DIR / name).write_text(text)
        print(OUT_DIR / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
