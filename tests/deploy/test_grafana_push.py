"""`callscope grafana push` against a local HTTP server that answers like Grafana's HTTP API.

No Grafana server installs here from Debian, PyPI or npm, so the server below keeps data sources,
folders and dashboards in memory with Grafana's paths, status codes and version counting
(GET /api/health, /api/datasources/uid/:uid, /api/folders/:uid, /api/dashboards/uid/:uid,
POST /api/datasources, /api/folders, /api/dashboards/db, PUT /api/datasources/uid/:uid), and
records every request, so a test can say what the push wrote.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from deploy.cli import main
from deploy.grafana_cli import DASHBOARDS_DIR

TOKEN = "glsa_test_token"
WRITES = ("POST", "PUT", "DELETE", "PATCH")


@dataclass
class GrafanaState:
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> {dashboard, folderUid}
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    next_id: int = 1

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.requests if m in WRITES]


class GrafanaLike(BaseHTTPRequestHandler):
    state: GrafanaState

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        return None

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        body = self._body() if method in WRITES else None
        self.state.requests.append((method, self.path, body))
        if self.path == "/api/health":
            return self._send(200, {"commit": "test", "database": "ok", "version": "11.3.0"})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, {"message": "Invalid API key", "traceID": ""})
        route = (method, *self.path.strip("/").split("/")[1:])
        match route:
            case ("GET", "datasources", "uid", uid):
                if uid not in self.state.datasources:
                    return self._send(404, {"message": "Data source not found"})
                return self._send(200, self.state.datasources[uid])
            case ("POST", "datasources"):
                return self._send(200, self._save_datasource(body, None))
            case ("PUT", "datasources", "uid", uid):
                if uid not in self.state.datasources:
                    return self._send(404, {"message": "Data source not found"})
                return self._send(200, self._save_datasource(body, self.state.datasources[uid]))
            case ("GET", "folders", uid):
                if uid not in self.state.folders:
                    return self._send(404, {"message": "folder not found", "status": "not-found"})
                return self._send(200, self.state.folders[uid])
            case ("POST", "folders"):
                folder = {"id": self._id(), "uid": body["uid"], "title": body["title"], "version": 1}
                self.state.folders[body["uid"]] = folder
                return self._send(200, folder)
            case ("GET", "dashboards", "uid", uid):
                if uid not in self.state.dashboards:
                    return self._send(404, {"message": "Dashboard not found"})
                saved = self.state.dashboards[uid]
                meta = {"folderUid": saved["folderUid"], "version": saved["dashboard"]["version"]}
                return self._send(200, {"dashboard": saved["dashboard"], "meta": meta})
            case ("POST", "dashboards", "db"):
                return self._save_dashboard(body)
        return self._send(404, {"message": "Not found"})

    def _id(self) -> int:
        self.state.next_id += 1
        return self.state.next_id

    def _save_datasource(self, body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        stored = {k: v for k, v in body.items() if k != "secureJsonData"}  # never returned, as Grafana
        stored["secureJsonFields"] = {k: True for k in body.get("secureJsonData", {})}
        stored["id"] = current["id"] if current else self._id()
        stored["version"] = current["version"] + 1 if current else 1
        stored["readOnly"] = False
        self.state.datasources[body["uid"]] = stored
        return {
            "datasource": stored,
            "id": stored["id"],
            "name": stored["name"],
            "message": "Datasource added",
        }

    def _save_dashboard(self, body: dict[str, Any]) -> None:
        dashboard = dict(body["dashboard"])
        if body.get("folderUid") and body["folderUid"] not in self.state.folders:
            return self._send(400, {"message": "folder not found"})
        current = self.state.dashboards.get(dashboard["uid"])
        if (
            current
            and not body.get("overwrite")
            and dashboard.get("version") != current["dashboard"]["version"]
        ):
            return self._send(412, {"message": "The dashboard has been changed by someone else"})
        dashboard["id"] = current["dashboard"]["id"] if current else self._id()
        dashboard["version"] = current["dashboard"]["version"] + 1 if current else 1
        self.state.dashboards[dashboard["uid"]] = {"dashboard": dashboard, "folderUid": body.get("folderUid")}
        return self._send(
            200,
            {
                "id": dashboard["id"],
                "uid": dashboard["uid"],
                "status": "success",
                "version": dashboard["version"],
            },
        )

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


@pytest.fixture
def grafana() -> Iterator[tuple[str, GrafanaState]]:
    state = GrafanaState()
    handler = type("Handler", (GrafanaLike,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="grafana-like", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _push(url: str, *extra: str, token: str = TOKEN) -> int:
    return main(
        ["grafana", "push", "--url", url, "--token", token, "--postgres-user", "grafana_reader", *extra]
    )


def test_a_first_push_creates_the_data_sources_the_folder_and_every_dashboard(grafana, capsys, monkeypatch):
    url, state = grafana
    monkeypatch.setenv("CALLSCOPE_GRAFANA_DB_PASSWORD", "s3cret")
    assert _push(url) == 0
    assert set(state.datasources) == {"callscope-prometheus", "callscope-postgres"}
    assert state.datasources["callscope-postgres"]["jsonData"]["database"] == "callscope"
    assert state.datasources["callscope-postgres"]["user"] == "grafana_reader"
    sent = [b for m, p, b in state.requests if (m, p) == ("POST", "/api/datasources")]
    assert {b["uid"]: b.get("secureJsonData") for b in sent}["callscope-postgres"] == {"password": "s3cret"}
    assert set(state.folders) == {"callscope"}
    files = sorted(DASHBOARDS_DIR.glob("*.json"))
    assert len(files) >= 4
    assert set(state.dashboards) == {json.loads(f.read_text())["uid"] for f in files}
    assert all(
        d["folderUid"] == "callscope" and d["dashboard"]["version"] == 1 for d in state.dashboards.values()
    )
    out = capsys.readouterr().out
    assert f"{2 + 1 + len(files)} changed, 0 unchanged" in out


def test_a_second_push_changes_nothing(grafana, capsys):
    url, state = grafana
    assert _push(url) == 0
    writes_before = len(state.writes())
    capsys.readouterr()
    assert _push(url) == 0
    assert len(state.writes()) == writes_before, state.writes()[writes_before:]
    assert all(d["dashboard"]["version"] == 1 for d in state.dashboards.values())
    assert "0 changed" in capsys.readouterr().out


def test_a_changed_dashboard_becomes_its_next_version_and_only_it_is_written(grafana, capsys, tmp_path: Path):
    url, state = grafana
    folder = tmp_path / "dashboards"
    shutil.copytree(DASHBOARDS_DIR, folder)
    assert _push(url, "--dashboards", str(folder)) == 0
    changed = folder / "live-operations.json"
    dashboard = json.loads(changed.read_text())
    dashboard["panels"][0]["title"] = "Active calls (renamed)"
    changed.write_text(json.dumps(dashboard))
    writes_before = len(state.writes())
    capsys.readouterr()
    assert _push(url, "--dashboards", str(folder)) == 0
    assert state.writes()[writes_before:] == [("POST", "/api/dashboards/db")]
    saved = state.dashboards[dashboard["uid"]]["dashboard"]
    assert saved["version"] == 2 and saved["panels"][0]["title"] == "Active calls (renamed)"
    assert "updated (version 2)" in capsys.readouterr().out


def test_a_changed_prometheus_url_updates_that_data_source_in_place(grafana):
    url, state = grafana
    assert _push(url) == 0
    assert _push(url, "--prometheus-url", "http://prometheus.monitoring:9090") == 0
    source = state.datasources["callscope-prometheus"]
    assert source["url"] == "http://prometheus.monitoring:9090" and source["version"] == 2
    assert ("PUT", "/api/datasources/uid/callscope-prometheus") in state.writes()


def test_a_wrong_token_is_one_line_and_writes_nothing(grafana, capsys):
    url, state = grafana
    assert _push(url, token="wrong") == 1
    err = capsys.readouterr().err.strip()
    assert err == f"callscope grafana push: Grafana at {url} refused the token (401): check --token"
    assert state.writes() == []


def test_a_url_where_nothing_listens_is_one_line(capsys):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert _push(f"http://127.0.0.1:{port}") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"callscope grafana push: cannot reach Grafana at http://127.0.0.1:{port}: ConnectionError"
    ]


def test_a_url_that_is_not_grafana_is_one_line(capsys):
    class NotGrafana(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return None

        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>not here</html>")

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotGrafana)
    thread = threading.Thread(target=server.serve_forever, name="not-grafana", daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert _push(url) == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"callscope grafana push: {url} does not answer like Grafana (GET /api/health: 404)"]


def test_no_token_at_all_is_one_line(capsys, monkeypatch):
    monkeypatch.delenv("CALLSCOPE_GRAFANA_TOKEN", raising=False)
    assert main(["grafana", "push", "--url", "http://127.0.0.1:9"]) == 1
    assert "no token" in capsys.readouterr().err
