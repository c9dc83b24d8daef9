"""`callscope grafana push`: the data sources and dashboards of deploy/grafana/ onto a running Grafana.

Through grafana-client (the maintained successor of the `grafana-api` package). Idempotent: each
data source, the folder and each dashboard is read first and written only when it differs, so a
second push changes nothing and a changed dashboard becomes its next version in Grafana's history.
A wrong URL or token ends the command with one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.cli_common import env_block, formatter

GRAFANA_DIR = Path(__file__).resolve().parent / "grafana"
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "callscope.yml"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
FOLDER_UID, FOLDER_TITLE = "callscope", "callscope"
TIMEOUT_S = 10.0
EXIT_FAILED = 1
# What a data source is compared on: Grafana adds ids, versions and read-only flags of its own,
# and never returns secureJsonData, so a password is sent when a data source is created or changed.
_DATASOURCE_FIELDS = ("name", "type", "access", "url", "user", "isDefault", "jsonData")
_VOLATILE_DASHBOARD_FIELDS = ("id", "version")


class PushError(Exception):
    """Why a push stopped: one line for the operator."""


@dataclass
class PushReport:
    lines: list[str] = field(default_factory=list)
    changed: int = 0

    def note(self, what: str, outcome: str) -> None:
        self.lines.append(f"{what}: {outcome}")
        if outcome != "unchanged":
            self.changed += 1


def add_grafana_command(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    grafana = sub.add_parser(
        "grafana",
        help="put callscope's dashboards and data sources on a Grafana",
        description="Grafana for callscope: the dashboards of deploy/grafana/dashboards, its data sources.",
        formatter_class=formatter,
    )
    grafana_sub = grafana.add_subparsers(dest="grafana_command", metavar="SUBCOMMAND", required=True)
    push = grafana_sub.add_parser(
        "push",
        parents=[parent],
        help="create or update the data sources, the folder and the dashboards (idempotent)",
        description=(
            "Uploads the Prometheus and PostgreSQL data sources, the `callscope` folder and every\n"
            "dashboard to a running Grafana through its HTTP API. What is already there and equal is\n"
            "left alone; a dashboard that differs is saved as its next version."
        ),
        epilog=env_block(
            "environment",
            [
                ("CALLSCOPE_GRAFANA_TOKEN", "the token when --token is not given"),
                (
                    "CALLSCOPE_GRAFANA_DB_USER",
                    "the PostgreSQL data source's user when --postgres-user is not given",
                ),
                ("CALLSCOPE_GRAFANA_DB_PASSWORD", "password of the PostgreSQL data source's user"),
            ],
        )
        + "\nExit code 0 when everything is in place, 1 when Grafana could not be reached or refused.",
        formatter_class=formatter,
    )
    push.add_argument("--url", required=True, help="Grafana's base URL, e.g. http://grafana:3000")
    push.add_argument(
        "--token", help="a service-account token (Editor or Admin); default $CALLSCOPE_GRAFANA_TOKEN"
    )
    push.add_argument(
        "--prometheus-url", help="Prometheus as Grafana reaches it (default: the provisioning file's)"
    )
    push.add_argument("--postgres-host", help="host:port of PostgreSQL as Grafana reaches it")
    push.add_argument("--postgres-database", help="database (default callscope)")
    push.add_argument("--postgres-user", help="a read-only user for the dashboards")
    push.add_argument(
        "--dashboards", type=Path, default=DASHBOARDS_DIR, help="folder of dashboard JSON files"
    )
    push.set_defaults(handler=cmd_grafana_push)


def cmd_grafana_push(args: argparse.Namespace, environ: dict[str, str]) -> int:
    token = args.token or environ.get("CALLSCOPE_GRAFANA_TOKEN", "")
    if not token:
        print(
            "callscope grafana push: no token: give --token or set CALLSCOPE_GRAFANA_TOKEN", file=sys.stderr
        )
        return EXIT_FAILED
    try:
        datasources = datasource_bodies(
            prometheus_url=args.prometheus_url,
            postgres_host=args.postgres_host,
            postgres_database=args.postgres_database,
            postgres_user=args.postgres_user or environ.get("CALLSCOPE_GRAFANA_DB_USER"),
            postgres_password=environ.get("CALLSCOPE_GRAFANA_DB_PASSWORD"),
        )
        report = push(args.url, token, datasources, load_dashboards(args.dashboards))
    except PushError as exc:
        print(f"callscope grafana push: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for line in report.lines:
        print(line)
    print(f"{report.changed} changed, {len(report.lines) - report.changed} unchanged")
    return 0


def datasource_bodies(
    *,
    prometheus_url: str | None = None,
    postgres_host: str | None = None,
    postgres_database: str | None = None,
    postgres_user: str | None = None,
    postgres_password: str | None = None,
) -> list[dict[str, Any]]:
    """The provisioning file's data sources as API bodies, with the given overrides."""
    import yaml

    bodies = []
    for source in yaml.safe_load(DATASOURCES_FILE.read_text())["datasources"]:
        body = {k: v for k, v in source.items() if k != "secureJsonData"}
        if source["type"] == "prometheus":
            body["url"] = prometheus_url or body["url"]
        else:
            body["url"] = postgres_host or body["url"]
            body["user"] = postgres_user or ""
            body["jsonData"] = {
                **body["jsonData"],
                "database": postgres_database or body["jsonData"]["database"],
            }
            if not body["user"]:
                raise PushError("the PostgreSQL data source needs a user: give --postgres-user")
            if postgres_password:
                body["secureJsonData"] = {"password": postgres_password}
        bodies.append(body)
    return bodies


def load_dashboards(folder: Path) -> list[dict[str, Any]]:
    files = sorted(folder.glob("*.json"))
    if not files:
        raise PushError(f"no dashboards (*.json) in {folder}")
    dashboards = []
    for path in files:
        try:
            dashboard = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PushError(f"cannot read dashboard {path}: {exc}") from None
        if not dashboard.get("uid"):
            raise PushError(f"dashboard {path} has no uid: it could not be updated in place")
        dashboards.append(dashboard)
    return dashboards


def push(
    url: str, token: str, datasources: list[dict[str, Any]], dashboards: list[dict[str, Any]]
) -> PushReport:
    """Make Grafana at `url` hold these data sources and dashboards; report what changed."""
    import requests
    from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

    api = _connect(url, token)
    report = PushReport()
    try:
        _check_grafana(api, url)
        for body in datasources:
            report.note(f"datasource {body['name']}", _put_datasource(api, body, GrafanaClientError))
        report.note(f"folder {FOLDER_TITLE}", _put_folder(api, GrafanaClientError))
        for dashboard in dashboards:
            report.note(f"dashboard {dashboard['title']}", _put_dashboard(api, dashboard, GrafanaClientError))
    except GrafanaUnauthorizedError:
        raise PushError(f"Grafana at {url} refused the token (401): check --token") from None
    except GrafanaClientError as exc:
        if exc.status_code == 403:
            raise PushError(
                "the token may not change this Grafana (403): it needs the Editor or Admin role"
            ) from None
        raise PushError(f"Grafana at {url} refused the request: {exc.message}") from None
    except GrafanaException as exc:
        raise PushError(f"Grafana at {url} failed: {exc.message}") from None
    except requests.RequestException as exc:
        raise PushError(f"cannot reach Grafana at {url}: {type(exc).__name__}") from None
    return report


def _connect(url: str, token: str):  # noqa: ANN202 - grafana_client has no type hints
    from urllib.parse import urlparse

    from grafana_client import GrafanaApi

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise PushError(f"--url must be http(s)://host[:port][/path], not {url!r}")
    if parsed.path and not parsed.path.endswith("/"):
        url += "/"  # grafana-client appends "api" to the path as it is
    return GrafanaApi.from_url(url, credential=token, timeout=TIMEOUT_S)


def _check_grafana(api: Any, url: str) -> None:
    """GET /api/health answers JSON with a `database` field on every Grafana; anything else is not one."""
    from grafana_client.client import GrafanaException

    try:
        health = api.health.check()
    except GrafanaException as exc:
        raise PushError(f"{url} does not answer like Grafana (GET /api/health: {exc.status_code})") from None
    except ValueError:
        raise PushError(f"{url} does not answer like Grafana (GET /api/health is not JSON)") from None
    if not isinstance(health, dict) or "database" not in health:
        raise PushError(f"{url} does not answer like Grafana (GET /api/health)")


def _put_datasource(api: Any, body: dict[str, Any], not_found: type[Exception]) -> str:
    try:
        current = api.datasource.get_datasource_by_uid(body["uid"])
    except not_found as exc:
        if getattr(exc, "status_code", None) != 404:
            raise
        api.datasource.create_datasource(body)
        return "created"
    if all(current.get(k) == body.get(k) for k in _DATASOURCE_FIELDS):
        return "unchanged"  # a password alone is not compared: Grafana never returns it
    api.datasource.update_datasource_by_uid(body["uid"], body)
    return "updated"


def _put_folder(api: Any, not_found: type[Exception]) -> str:
    try:
        api.folder.get_folder(FOLDER_UID)
        return "unchanged"
    except not_found as exc:
        if getattr(exc, "status_code", None) != 404:
            raise
    api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
    return "created"


def _comparable(dashboard: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dashboard.items() if k not in _VOLATILE_DASHBOARD_FIELDS}


def _put_dashboard(api: Any, dashboard: dict[str, Any], not_found: type[Exception]) -> str:
    try:
        current = api.dashboard.get_dashboard(dashboard["uid"])
    except not_found as exc:
        if getattr(exc, "status_code", None) != 404:
            raise
        current = None
    if current is not None:
        in_folder = current.get("meta", {}).get("folderUid") == FOLDER_UID
        if in_folder and _comparable(current["dashboard"]) == _comparable(dashboard):
            return "unchanged"
    saved = api.dashboard.update_dashboard(
        {
            "dashboard": {**dashboard, "id": None},
            "folderUid": FOLDER_UID,
            "overwrite": True,  # the repository is the source of truth; the version history keeps the old one
            "message": "callscope grafana push",
        }
    )
    version = saved.get("version") if isinstance(saved, dict) else None
    outcome = "created" if current is None else "updated"
    return f"{outcome} (version {version})" if version is not None else outcome
