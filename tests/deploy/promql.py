"""Every PromQL expression the repository ships (rules, dashboards), for tests to evaluate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
_THRESHOLD = re.compile(r"\s*(?:>|<|>=|<=|==|!=)\s*-?[\d.]+\s*$")


def alert_signals(expr: str) -> list[str]:
    """`a > 1 and b > 0` -> ["a", "b"]: what an alert compares, which has series even when calm."""
    return [_THRESHOLD.sub("", part).strip() for part in re.split(r"\s+and\s+", expr)]


def rule_expressions() -> dict[str, str]:
    """name -> expression to evaluate: recording rules as written, alerts as their signals."""
    found: dict[str, str] = {}
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    found[rule["record"]] = rule["expr"]
                else:
                    for n, signal in enumerate(alert_signals(rule["expr"])):
                        found[f"{rule['alert']}[{n}]"] = signal
    return found


def _panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return panels


def dashboard_targets(datasource_type: str) -> dict[str, dict]:
    """'dashboard / panel / refId' -> the target, for every panel target of that data source type."""
    found: dict[str, dict] = {}
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                source = target.get("datasource") or panel.get("datasource") or {}
                if source.get("type") == datasource_type:
                    found[f"{dashboard['title']} / {panel['title']} / {target.get('refId', 'A')}"] = target
    return found


def dashboard_promql() -> dict[str, str]:
    return {name: target["expr"] for name, target in dashboard_targets("prometheus").items()}


def dashboard_sql() -> dict[str, str]:
    targets = dashboard_targets("grafana-postgresql-datasource")
    return {name: target["rawSql"] for name, target in targets.items()}
