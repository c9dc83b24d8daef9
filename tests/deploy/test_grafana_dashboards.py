"""deploy/grafana/: committed dashboards are what dashboards.py generates; they use provisioned sources."""

from __future__ import annotations

import json

import yaml

from deploy.grafana import dashboards
from tests.deploy.promql import DASHBOARDS, ROOT, dashboard_promql, dashboard_sql

PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
DATASOURCES_FILE = PROVISIONING / "datasources" / "callscope.yml"


def test_the_committed_json_is_what_the_code_generates() -> None:
    rendered = dashboards.render()
    committed = {path.name: path.read_text() for path in DASHBOARDS}
    assert committed == rendered, "run `python -m deploy.grafana.dashboards` and commit the JSON"


def test_the_four_dashboards_have_unique_uids_and_every_panel_a_provisioned_data_source() -> None:
    sources = {s["uid"]: s["type"] for s in yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"]}
    assert set(sources.values()) == {"prometheus", "grafana-postgresql-datasource"}
    uids = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        uids.add(dashboard["uid"])
        assert dashboard["panels"], path.name
        for panel in dashboard["panels"]:
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            for target in panel["targets"]:
                source = target["datasource"]
                assert sources.get(source["uid"]) == source["type"], f"{path.name}: {panel['title']}"
    assert {"callscope-live-ops", "callscope-latency", "callscope-asr", "callscope-call-analytics"} <= uids
    assert len(uids) == len(DASHBOARDS)


def test_the_latency_dashboard_shows_p50_p95_p99_of_every_stage_latency() -> None:
    latency = {
        name: expr for name, expr in dashboard_promql().items() if name.startswith("callscope / latency")
    }
    for metric in (
        "callscope_ingest_frame_delivery_seconds",
        "callscope_transcribe_partial_latency_seconds",
        "callscope_transcribe_first_partial_latency_seconds",
        "callscope_transcribe_final_latency_seconds",
        "callscope_analyze_final_to_assist_latency_seconds",
        "callscope_store_final_to_row_seconds",
    ):
        quantiles = {expr.split(",")[0] for expr in latency.values() if f"{metric}_bucket" in expr}
        assert quantiles == {f"histogram_quantile({q}" for q in ("0.5", "0.95", "0.99")}, metric


def test_the_call_analytics_dashboard_reads_postgresql_only_through_known_macros() -> None:
    queries = dashboard_sql()
    assert len(queries) >= 6
    for name, query in queries.items():
        macros = {m for m in query.split("$")[1:]}
        assert all(m.startswith(("__timeFilter(", "__timeGroupAlias(")) for m in macros), name


def test_the_provisioning_puts_the_dashboards_in_one_folder() -> None:
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "callscope.yml").read_text())["providers"]
    assert provider["folder"] == "callscope" and provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/callscope"


def test_compose_runs_prometheus_and_grafana_with_this_configuration_mounted() -> None:
    compose = yaml.safe_load((PROVISIONING.parents[2] / "docker-compose.yml").read_text())["services"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in compose["prometheus"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in compose["grafana"]["volumes"]
    assert (
        "./deploy/grafana/dashboards:/var/lib/grafana/dashboards/callscope:ro"
        in compose["grafana"]["volumes"]
    )
    for service in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in compose[service]["ports"]), service
    sources = yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"]
    prometheus = next(s for s in sources if s["type"] == "prometheus")
    assert prometheus["url"] == "http://prometheus:9090"
    assert {"CALLSCOPE_GRAFANA_DB_USER", "CALLSCOPE_GRAFANA_DB_PASSWORD"} <= set(
        compose["grafana"]["environment"]
    )
